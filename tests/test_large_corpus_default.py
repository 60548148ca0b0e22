"""The default ``curvature_structure="auto"`` does not refuse a large corpus
(issue 26): below the exact structures' memory it falls back to an approximation
that fits, and warns; an explicit structure still refuses."""

import warnings
from unittest import mock

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._curvature_structures import select_structure
from sklearn_ssse._memory import CurvatureMemoryError, check_memory_budget
from sklearn_ssse.datasets import make_zipf_corpus
from sklearn_ssse.exceptions import ApproximateCurvatureWarning


def _corpus(n_classes=2):
    return make_zipf_corpus(600, 2000, 30, n_classes=n_classes, random_state=0)


def _exact_peak(X, y):
    """The smallest peak of the exact structures ("auto"'s own list)."""
    model = ErasableLogisticRegression(memory_budget=None)
    maths = model._erasure_maths_for(X.shape[1], len(np.unique(y)))
    candidates = model._curvature_candidates(
        maths, X.dtype, X.shape[0], len(np.unique(y)), X=X
    )
    return min(candidate.peak_bytes for candidate in candidates)


@pytest.mark.parametrize("n_classes", [2, 6])
def test_auto_falls_back_warns_and_takes_requests(n_classes):
    X, y = _corpus(n_classes)
    budget = 0.5 * _exact_peak(X, y) / 2**20  # MiB: no exact structure fits
    model = ErasableLogisticRegression(memory_budget=budget)
    with pytest.warns(ApproximateCurvatureWarning, match="block_size=") as record:
        model.fit(X, y)
    message = str(record[0].message)
    assert "curvature_structure='cg'" in message  # what did not fit
    assert "memory_budget" in message and "cg-rows" in message  # the options
    assert model.curvature_structure_ == "blocks"
    chosen = check_memory_budget(model, X, y)
    size = chosen.params["block_size"]
    assert chosen.peak_bytes <= budget * 2**20
    bounds = model.curvature_inverse_.bounds
    assert max(stop - start for start, stop in bounds) == size
    # the check before the solver and the build agree
    maths = model._erasure_maths()
    structure, built = select_structure(
        "auto", maths, X, [], budget, estimator=model, return_bounds=True
    )
    assert structure == "blocks" and built == list(bounds)
    # the largest power of two that fits: twice as large would not
    twice = ErasableLogisticRegression(memory_budget=None, block_size=2 * size)
    assert check_memory_budget(twice, X, y).peak_bytes > budget * 2**20
    before = model.coef_.copy()
    model.partial_forget(X[:1], y[:1])
    model.partial_forget(X[1:21], y[1:21])
    assert model.n_forgotten_ == 21
    assert np.all(np.isfinite(model.coef_)) and not np.allclose(model.coef_, before)
    # predictions still those of a logistic regression on the corpus
    plain = LogisticRegression().fit(X[21:], y[21:])
    assert np.mean(model.predict(X) == plain.predict(X)) > 0.9


def test_tiny_budget_falls_back_to_the_diagonal():
    X, y = _corpus()
    model = ErasableLogisticRegression(memory_budget=None)
    diagonal = check_memory_budget(model.set_params(block_size=1), X, y)
    two = check_memory_budget(model.set_params(block_size=2), X, y)
    budget = (diagonal.peak_bytes + two.peak_bytes) / 2 / 2**20
    model.set_params(block_size=None, memory_budget=budget)
    with pytest.warns(ApproximateCurvatureWarning, match="block_size=1 "):
        model.fit(X, y)
    assert all(stop - start == 1 for start, stop in model.curvature_inverse_.bounds)
    model.partial_forget(X[:5], y[:5])
    assert model.n_forgotten_ == 5


@pytest.mark.parametrize("structure", ["cg", "cg-class", "blocks"])
def test_explicit_structure_refuses_before_the_solver(structure):
    X, y = _corpus()
    budget = 0.5 * _exact_peak(X, y) / 2**20
    model = ErasableLogisticRegression(
        memory_budget=budget, curvature_structure=structure
    )
    with mock.patch.object(LogisticRegression, "fit") as solver:
        with pytest.raises(CurvatureMemoryError, match="nothing was fitted"):
            model.fit(X, y)
    solver.assert_not_called()
    assert not hasattr(model, "coef_")


def test_explicit_block_size_is_kept_and_refused():
    X, y = _corpus()
    budget = 0.5 * _exact_peak(X, y) / 2**20
    model = ErasableLogisticRegression(memory_budget=budget, block_size=1024)
    with pytest.raises(CurvatureMemoryError):
        model.fit(X, y)


def test_nothing_fits_still_refuses():
    X, y = _corpus()
    model = ErasableLogisticRegression(memory_budget=1e-4)  # 100 bytes
    with pytest.raises(CurvatureMemoryError, match="nothing was fitted"):
        model.fit(X, y)


def test_a_budget_that_fits_the_exact_structure_does_not_warn():
    X, y = _corpus()
    model = ErasableLogisticRegression(memory_budget=2 * _exact_peak(X, y) / 2**20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ApproximateCurvatureWarning)
        model.fit(X, y)
    assert model.curvature_structure_ in ("blocks", "cg")


def test_zipf_corpus_is_reproducible_and_tfidf_like():
    X, y = make_zipf_corpus(500, 3000, 40, n_classes=6, random_state=3)
    X2, y2 = make_zipf_corpus(500, 3000, 40, n_classes=6, random_state=3)
    assert (X != X2).nnz == 0 and np.array_equal(y, y2)
    assert X.format == "csr" and X.dtype == np.float32
    assert set(np.unique(y)) == set(range(6))
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, 1, rtol=1e-5)
    assert X.data.min() > 0 and np.diff(X.indptr).max() <= 40
    # Zipf: the most frequent words are in most documents, most words in few
    df = np.sort(np.bincount(X.indices, minlength=3000))[::-1]
    assert df[0] > 0.3 * 500 and np.median(df) < 0.05 * 500
    with pytest.raises(ValueError, match="n_classes"):
        make_zipf_corpus(10, 10, n_classes=1)
