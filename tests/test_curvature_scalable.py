"""The scalable curvature structures against their definitions (small data)."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._curvature_cg import ConjugateGradientCurvature, augment_rows
from sklearn_ssse._curvature_structures import cg_nbytes, select_structure
from sklearn_ssse._logistic_maths import LogisticMaths


def _rows(n=40, d=6, n_outputs=3, sparse=False, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if sparse:
        X[rng.random((n, d)) < 0.6] = 0
        X = sp.csr_matrix(X)
    A = rng.standard_normal((n, n_outputs, n_outputs))
    V = A @ A.transpose(0, 2, 1) / n_outputs  # per-row V_i, PSD
    return augment_rows(X, True, 1.0), V


def _definition(Xt, V, prior, couple=True):
    """``diag(prior) + Σ_i V_i ⊗ x̃_i x̃_iᵀ`` (cross-output blocks zero unless
    ``couple``), formed densely."""
    Xd = Xt.toarray() if sp.issparse(Xt) else Xt
    if not couple:
        V = V * np.eye(V.shape[1])
    M = np.einsum("iab,ij,ik->ajbk", V, Xd, Xd).reshape(V.shape[1] * Xd.shape[1], -1)
    return M + np.diag(prior)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("couple", [True, False])
def test_cg_curvature_matches_definition(sparse, n_outputs, couple):
    Xt, V = _rows(n_outputs=n_outputs, sparse=sparse)
    prior = np.full(n_outputs * Xt.shape[1], 0.5)
    curvature = ConjugateGradientCurvature.from_rows(
        Xt,
        V,
        lambda diagonal: (prior, 1.0),
        np.zeros((len(prior), 0)),
        couple_outputs=couple,
        row_chunk=7,
        rtol=1e-12,
    )
    M = _definition(Xt, V, prior, couple)
    e = np.random.default_rng(1).standard_normal(len(prior))
    assert_allclose(curvature.matvec(e), M @ e, rtol=1e-10, atol=1e-10)
    assert_allclose(curvature.apply(e), np.linalg.solve(M, e), rtol=1e-8, atol=1e-10)
    assert_allclose(curvature.to_dense(), np.linalg.inv(M), rtol=1e-8, atol=1e-10)
    assert curvature.n_params == len(prior)
    assert curvature.dtype == np.float64
    assert not curvature.prefers_factors(1)

    # Sequential requests: each equals the curvature of the rows left.
    first = curvature.downdated(rows=(Xt[:5], V[:5]))
    second = first.downdated(rows=(Xt[5:12], V[5:12]))
    assert_allclose(curvature.matvec(e), M @ e, rtol=1e-10)  # unchanged
    for done, left in ((first, slice(5, None)), (second, slice(12, None))):
        M_left = _definition(Xt[left], V[left], prior, couple)
        assert_allclose(done.matvec(e), M_left @ e, rtol=1e-10, atol=1e-10)
        assert_allclose(
            done.apply(e), np.linalg.solve(M_left, e), rtol=1e-8, atol=1e-10
        )


def test_cg_curvature_rejects_rows_it_never_held():
    Xt, V = _rows(n_outputs=1, sparse=True)
    Xt = sp.csr_matrix(Xt)
    prior = np.ones(Xt.shape[1])
    dense_cols = Xt.toarray()
    dense_cols[:, 0] = 0  # column 0 never co-occurs with anything
    Xt = sp.csr_matrix(dense_cols)
    curvature = ConjugateGradientCurvature.from_rows(
        Xt, V[:, :1, :1], lambda d: (prior, 1.0), np.zeros((len(prior), 0))
    )
    stranger = sp.csr_matrix(np.ones((1, Xt.shape[1])))
    with pytest.raises(np.linalg.LinAlgError, match="not part of the fit"):
        curvature.downdated(rows=(stranger, np.ones((1, 1, 1))))
    with pytest.raises(ValueError, match="rows="):
        curvature.downdated(factors=[np.ones((len(prior), 1))])


def test_cg_curvature_refuses_an_indefinite_downdate():
    Xt, V = _rows(n_outputs=1)
    prior = np.full(Xt.shape[1], 1e-3)
    curvature = ConjugateGradientCurvature.from_rows(
        Xt, V[:, :1, :1], lambda d: (prior, 1.0), np.zeros((len(prior), 0))
    )
    with pytest.raises(np.linalg.LinAlgError):
        curvature.downdated(rows=(Xt, 3 * V[:, :1, :1]))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind", ["hessian", "fisher"])
def test_cg_structure_gives_the_dense_block_update(sparse, n_classes, kind):
    X, y = make_classification(
        120, 8, n_informative=5, n_classes=n_classes, random_state=0
    )
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 0.7, X, 0))
    dense = ErasableLogisticRegression(
        curvature=kind, curvature_structure="blocks"
    ).fit(X, y)
    cg = ErasableLogisticRegression(curvature=kind, curvature_structure="cg").fit(X, y)
    assert cg.curvature_structure_ == "cg"
    assert isinstance(cg.curvature_inverse_, ConjugateGradientCurvature)
    assert_allclose(cg.damping_diagonal_, dense.damping_diagonal_)
    cg.curvature_inverse_.rtol = 1e-12  # carried through the downdates
    for rows in (slice(0, 3), slice(3, 20)):
        dense.partial_forget(X[rows], y[rows])
        cg.partial_forget(X[rows], y[rows])
        assert_allclose(cg.coef_, dense.coef_, rtol=1e-7, atol=1e-9)
        assert_allclose(cg.intercept_, dense.intercept_, rtol=1e-7, atol=1e-9)
    assert_allclose(
        cg.curvature_inverse_.to_dense(),
        dense.curvature_inverse_.to_dense(),
        rtol=1e-7,
        atol=1e-10,
    )


def test_cg_class_drops_only_the_cross_class_curvature():
    X, y = make_classification(100, 6, n_informative=4, n_classes=3, random_state=1)
    model = ErasableLogisticRegression(
        curvature="hessian", curvature_structure="cg-class"
    ).fit(X, y)
    maths = model._erasure_maths()
    V = maths.kronecker_weights(
        X, y, model.curvature_point_, np.ones(3, bool), "hessian"
    )
    Xt = augment_rows(X, True, 1.0)
    M = _definition(Xt, V, model.damping_diagonal_, couple=False)
    null = model.curvature_inverse_.null
    assert_allclose(
        np.linalg.inv(model.curvature_inverse_.to_dense()),
        M + null @ null.T,
        rtol=1e-8,
        atol=1e-10,
    )


def test_float32_stays_float32_and_pickles():
    X, y = make_classification(80, 6, random_state=0)
    X = sp.csr_matrix(X.astype(np.float32))
    model = ErasableLogisticRegression(curvature_structure="cg").fit(X, y)
    assert model.curvature_inverse_.dtype == np.float32
    model.partial_forget(X[:4], y[:4])
    assert model.coef_.dtype == np.float32
    clone = pickle.loads(pickle.dumps(model))
    assert_allclose(clone.decision_function(X), model.decision_function(X))
    clone.partial_forget(X[4:6], y[4:6])


def test_cg_refuses_fisher_batches():
    X, y = make_classification(60, 4, random_state=0)
    model = ErasableLogisticRegression(curvature_structure="cg", fisher_batch_size=4)
    with pytest.raises(ValueError, match="fisher_batch_size"):
        model.fit(X, y)


def test_auto_keeps_blocks_when_they_fit_and_falls_back_otherwise():
    X = sp.random(50, 400, density=0.02, format="csr", random_state=0)
    maths = LogisticMaths(400, 3, True)
    bounds = [(0, maths.n_params)]
    assert select_structure("auto", maths, X, bounds, memory_budget=None) == "blocks"
    assert select_structure("auto", maths, X, bounds, memory_budget=1e6) == "blocks"
    small = (cg_nbytes(maths, X) + 1) / 2**20
    assert select_structure("auto", maths, X, bounds, memory_budget=small) == "cg"
    tiny = (cg_nbytes(maths, X, couple_outputs=False) + 1) / 2**20
    assert select_structure("auto", maths, X, bounds, memory_budget=tiny) == (
        "cg-class"
    )
    assert select_structure("cg", maths, X, bounds) == "cg"


def test_estimate_bounds_the_stored_bytes():
    X, y = make_classification(200, 30, random_state=0)
    X = sp.csr_matrix(np.where(X > 1.0, X, 0))
    for structure in ("cg", "cg-class"):
        model = ErasableLogisticRegression(curvature_structure=structure).fit(X, y)
        maths = model._erasure_maths()
        estimate = cg_nbytes(maths, X, couple_outputs=structure == "cg")
        assert model.curvature_inverse_.nbytes <= estimate
    dense = ErasableLogisticRegression(curvature_structure="cg").fit(X.toarray(), y)
    estimate = cg_nbytes(dense._erasure_maths(), X.toarray())
    assert 0.5 * estimate <= dense.curvature_inverse_.nbytes <= estimate


def test_changing_the_structure_after_fit_asks_for_a_new_fit():
    X, y = make_classification(60, 4, random_state=0)
    model = ErasableLogisticRegression(curvature_structure="cg").fit(X, y)
    model.set_params(curvature_structure="blocks")
    with pytest.raises(ValueError, match="curvature_structure"):
        model.partial_forget(X[:2], y[:2])
