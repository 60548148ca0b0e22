"""The scalable curvature structures against their definitions (small data)."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._curvature_cg import (
    ConjugateGradientCurvature,
    RowCurvature,
    augment_rows,
    row_hashes,
)
from sklearn_ssse._curvature_structures import (
    SOLVER_PASS_COST,
    TYPICAL_CG_PRODUCTS,
    cg_estimate,
    cg_nbytes,
    request_cost_ratio,
    select_structure,
)
from sklearn_ssse._logistic_maths import LogisticMaths
from sklearn_ssse._memory import CurvatureMemoryError, check_memory_budget
from sklearn_ssse.exceptions import (
    ApproximateCurvatureWarning,
    CostlyErasureWarning,
    ErasureError,
)


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


@pytest.mark.parametrize("kept", [ConjugateGradientCurvature, RowCurvature])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_outputs", [1, 3])
@pytest.mark.parametrize("couple", [True, False])
def test_cg_curvature_matches_definition(sparse, n_outputs, couple, kept):
    Xt, V = _rows(n_outputs=n_outputs, sparse=sparse)
    prior = np.full(n_outputs * Xt.shape[1], 0.5)
    curvature = kept.from_rows(
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


@pytest.mark.parametrize("structure", ["cg", "cg-rows"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind", ["hessian", "fisher"])
def test_cg_structure_gives_the_dense_block_update(sparse, n_classes, kind, structure):
    X, y = make_classification(
        120, 8, n_informative=5, n_classes=n_classes, random_state=0
    )
    if sparse:
        X = sp.csr_matrix(np.where(np.abs(X) > 0.7, X, 0))
    dense = ErasableLogisticRegression(
        curvature=kind, curvature_structure="blocks"
    ).fit(X, y)
    cg = ErasableLogisticRegression(curvature=kind, curvature_structure=structure)
    cg.fit(X, y)
    assert cg.curvature_structure_ == structure
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


def _wide_sparse(n=60, d=2100, n_classes=2, density=0.01, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed)
    X.data = rng.uniform(0.1, 1.0, X.nnz)
    y = np.arange(n) % n_classes
    return X, y


def test_auto_prefers_cg_on_wide_sparse_data_and_blocks_on_dense():
    X, y = _wide_sparse()
    auto = ErasableLogisticRegression()
    # The dense block of 2 101 coordinates (34 MiB) would fit, but "cg" stores
    # the rows (kilobytes) and builds in one pass: it comes first.
    chosen = check_memory_budget(auto, X, y)
    assert chosen.params == {"curvature_structure": "cg"}
    assert auto.fit(X, y).curvature_structure_ == "cg"
    auto.partial_forget(X[:2], y[:2])
    # Narrow sparse data and dense data keep the blocks.
    Xn, yn = make_classification(80, 6, random_state=0)
    for data in (Xn, sp.csr_matrix(np.where(Xn > 0.5, Xn, 0))):
        assert check_memory_budget(auto, data, yn).params == {"block_size": None}
        assert auto.fit(data, yn).curvature_structure_ == "blocks"


def test_check_and_build_agree_under_every_budget():
    X, y = make_classification(60, 30, n_informative=5, n_classes=3, random_state=0)
    model = ErasableLogisticRegression(memory_budget=None)
    maths = model._erasure_maths_for(X.shape[1], 3)
    candidates = model._curvature_candidates(maths, X.dtype, 60, 3, X=X)
    names = [c.params.get("curvature_structure", "blocks") for c in candidates]
    assert names == ["blocks", "cg", "cg-class"]  # dense data
    peaks = sorted({c.peak_bytes for c in candidates})
    assert candidates[2].peak_bytes < candidates[1].peak_bytes
    for budget, expected in (
        (None, "blocks"),
        (candidates[0].peak_bytes, "blocks"),
        (candidates[1].peak_bytes, "cg"),
        (candidates[2].peak_bytes, "cg-class"),
    ):
        mib = None if budget is None else budget / 2**20
        model.set_params(memory_budget=mib)
        chosen = check_memory_budget(model, X, y)
        assert chosen.params.get("curvature_structure", "blocks") == expected
        assert model.fit(X, y).curvature_structure_ == expected
        # the same decision, made again where the state is built
        assert select_structure("auto", maths, X, [], mib, estimator=model) == (
            expected
        )
    # Below every exact structure "auto" falls back to smaller blocks (warned,
    # tests/test_large_corpus_default.py); an explicit structure still refuses.
    model.set_params(memory_budget=0.5 * peaks[0] / 2**20)
    with pytest.warns(ApproximateCurvatureWarning):
        assert model.fit(X, y).curvature_structure_ == "blocks"
    with pytest.raises(CurvatureMemoryError, match="cg-class"):
        model.set_params(curvature_structure="cg-class").fit(X, y)


def test_explicit_cg_is_checked_by_its_own_estimate():
    """The bug: the check used the dense block's peak whatever the structure."""
    X, y = _wide_sparse(d=3000)
    maths = ErasableLogisticRegression()._erasure_maths_for(3000, 2)
    estimate = cg_estimate(maths, X, X.dtype, X.shape[0])
    budget = 4 * estimate.peak_bytes / 2**20  # far below the dense block's 72 MiB
    model = ErasableLogisticRegression(curvature_structure="cg", memory_budget=budget)
    assert check_memory_budget(model, X, y) == estimate
    model.fit(X, y).partial_forget(X[:3], y[:3])
    blocks = ErasableLogisticRegression(
        curvature_structure="blocks", memory_budget=budget
    )
    with pytest.raises(CurvatureMemoryError) as info:
        blocks.fit(X, y)
    options = str(info.value).split("Options that fit:")[1]
    assert "curvature_structure='cg'" in options
    # the message names "cg-class" too where it differs (several classes)
    X3, y3 = _wide_sparse(d=3000, n_classes=3)
    with pytest.raises(CurvatureMemoryError) as info:
        blocks.fit(X3, y3)
    options = str(info.value).split("Options that fit:")[1]
    assert "curvature_structure='cg'" in options
    assert "curvature_structure='cg-class'" in options


def test_fisher_batches_and_l1_keep_the_blocks_under_auto(monkeypatch):
    import sklearn_ssse._curvature_structures as structures

    monkeypatch.setattr(structures, "CG_PREFERENCE_MIN_BLOCK", 0)
    X, y = _wide_sparse(d=300)
    auto = ErasableLogisticRegression()
    assert auto.fit(X, y).curvature_structure_ == "cg"  # small blocks now count
    for params in (
        {"curvature": "fisher", "fisher_batch_size": 4},
        {"l1_ratio": 0.5, "solver": "saga", "max_iter": 50, "tol": 1e-2},
    ):
        model = ErasableLogisticRegression(**params)
        assert check_memory_budget(model, X, y).params == {"block_size": None}
        assert model.fit(X, y).curvature_structure_ == "blocks"


def test_select_structure_without_an_estimator():
    X = sp.random(50, 400, density=0.02, format="csr", random_state=0)
    maths = LogisticMaths(400, 3, True)
    bounds = [(0, maths.n_params)]
    assert select_structure("auto", maths, X, bounds, memory_budget=None) == "blocks"
    coupled = cg_estimate(maths, X, X.dtype, 50)
    single = cg_estimate(maths, X, X.dtype, 50, couple_outputs=False)
    budget = coupled.peak_bytes / 2**20
    assert select_structure("auto", maths, X, bounds, memory_budget=budget) == "cg"
    budget = single.peak_bytes / 2**20
    assert select_structure("auto", maths, X, bounds, budget) == "cg-class"
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


def test_row_curvature_deletes_exactly_the_rows_asked_for():
    """Repeated rows: each request row takes out one stored copy, no more."""
    Xt, V = _rows(n=30, n_outputs=2, sparse=True)
    Xt = sp.vstack([Xt, Xt[:3]], format="csr")  # rows 0-2 twice
    V = np.concatenate([V, V[:3]])
    prior = np.full(2 * Xt.shape[1], 0.5)
    curvature = RowCurvature.from_rows(
        Xt, V, lambda d: (prior, 1.0), np.zeros((len(prior), 0))
    )
    assert_array_equal(row_hashes(Xt[:3]), row_hashes(Xt[-3:]))
    assert len(np.unique(row_hashes(Xt))) == 30
    e = np.random.default_rng(2).standard_normal(len(prior))
    # rows 0 and 0 again (both copies), and 5
    taken = [0, 0, 5]
    done = curvature.downdated(rows=(Xt[taken], V[taken]))
    assert done.rows.shape[0] == Xt.shape[0] - 3
    left = np.r_[1:5, 6:33]
    left = left[left != 30]  # the second copy of row 0
    M_left = _definition(Xt[left], V[left], prior)
    assert_allclose(done.matvec(e), M_left @ e, rtol=1e-10, atol=1e-10)
    assert_allclose(done.diagonal(), np.diag(M_left), rtol=1e-10, atol=1e-12)
    # a third copy of row 0 is not there; nor is row 5 twice
    for rows in ([0], [5]):
        with pytest.raises(np.linalg.LinAlgError, match="not among the stored"):
            done.downdated(rows=(Xt[rows], V[rows]))
    # the same row with other weights (another label or sample weight)
    with pytest.raises(np.linalg.LinAlgError, match="other curvature weights"):
        curvature.downdated(rows=(Xt[[7]], 2 * V[[7]]))
    # explicit zeros and entry order do not change a row's identity
    row = Xt[[8]].toarray()
    shuffled = sp.csr_matrix(row)
    shuffled.indices, shuffled.data = shuffled.indices[::-1], shuffled.data[::-1]
    assert_array_equal(row_hashes(shuffled), row_hashes(Xt[[8]]))
    # The hashes live in memory only, under a random key: never pickled.
    assert done._hashes is not None
    clone = pickle.loads(pickle.dumps(done))
    assert clone._hashes is None
    assert_allclose(clone.matvec(e), done.matvec(e))
    again = clone.downdated(rows=(Xt[[9]], V[[9]]))  # found under a new key
    assert clone._hashes[0] != done._hashes[0]
    assert again.rows.shape[0] == done.rows.shape[0] - 1


@pytest.mark.parametrize("structure", ["cg", "cg-rows"])
def test_sparse_cg_memory_estimate_bounds_fit_and_request(structure):
    import tracemalloc

    X, y = _wide_sparse(n=300, d=800, n_classes=3, density=0.03)
    model = ErasableLogisticRegression(
        curvature_structure=structure, memory_budget=None
    )
    estimate = check_memory_budget(model, X, y)
    model.fit(X, y)
    assert model.curvature_inverse_.nbytes <= estimate.stored_bytes
    assert model.curvature_inverse_.nbytes >= 0.5 * estimate.stored_bytes
    maths = model._erasure_maths()
    yi = np.searchsorted(model.classes_, y)
    tracemalloc.start()
    model._fit_erasure_state(X, yi, np.ones(len(y)))
    _, fit_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    model.partial_forget(X[:5], y[:5])  # (the request's own rows are not counted)
    _, request_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert maths.n_params == 3 * 801
    # the certificate's Gram matrix (when kept) is not part of this estimate
    assert fit_peak <= estimate.fit_peak_bytes
    assert request_peak - before <= estimate.request_peak_bytes


@pytest.mark.parametrize("couple", [True, False])
@pytest.mark.parametrize("preconditioner", ["blocks", "kronecker", "fallback"])
def test_dense_rows_with_the_kronecker_preconditioner(
    couple, preconditioner, monkeypatch
):
    """Dense data: the rows are kept; CG with each output's own block inverted
    (where the blocks store at most twice the rows), or the Kronecker
    preconditioner (elsewhere, or when a block cannot be factored), solves with
    the exact matrix, before and after sequential requests."""
    import sklearn_ssse._curvature_cg as module

    if preconditioner == "kronecker":
        monkeypatch.setattr(module, "BLOCKS_PER_ROWS", 0)
    elif preconditioner == "fallback":

        def fails(*args):
            raise np.linalg.LinAlgError("not positive definite")

        monkeypatch.setattr(RowCurvature, "block_preconditioner", fails)
    Xt, V = _rows(n=60, d=20, n_outputs=3)
    prior = np.full(3 * Xt.shape[1], 0.3)
    curvature = RowCurvature.from_rows(
        Xt,
        V,
        lambda d: (prior, 1.0),
        np.zeros((len(prior), 0)),
        couple_outputs=couple,
        row_chunk=13,
        rtol=1e-12,
    )
    assert (curvature.kronecker is not None) == (preconditioner != "blocks")
    assert (curvature.blocks is not None) == (preconditioner == "blocks")
    if preconditioner == "blocks":  # the inverse of each output's own block
        own = _definition(Xt, V, prior, couple=False)
        for a in range(3):
            part = slice(a * Xt.shape[1], (a + 1) * Xt.shape[1])
            assert_allclose(
                curvature.blocks[a], np.linalg.inv(own[part, part]), rtol=1e-8
            )
    e = np.random.default_rng(3).standard_normal(len(prior))
    done = curvature
    for taken in (slice(0, 4), slice(4, 11)):
        done = done.downdated(rows=(Xt[taken], V[taken]))
    for matrix, rows in ((curvature, slice(None)), (done, slice(11, None))):
        M = _definition(Xt[rows], V[rows], prior, couple)
        assert_allclose(matrix.matvec(e), M @ e, rtol=1e-10, atol=1e-10)
        assert_allclose(matrix.apply(e), np.linalg.solve(M, e), rtol=1e-8, atol=1e-9)
        assert_allclose(matrix.diagonal(), np.diag(M), rtol=1e-10)


def test_auto_never_keeps_the_training_rows():
    """ "cg-rows" stores the rows themselves: opt-in only."""
    X, y = _wide_sparse()
    maths = ErasableLogisticRegression()._erasure_maths_for(X.shape[1], 2)
    rows = cg_estimate(maths, X, X.dtype, X.shape[0], rows=True)
    for budget in (None, rows.peak_bytes / 2**20):
        model = ErasableLogisticRegression(memory_budget=budget)
        try:
            chosen = check_memory_budget(model, X, y)
        except CurvatureMemoryError as exc:
            assert "cg-rows" not in str(exc)
            continue
        assert chosen.params.get("curvature_structure") != "cg-rows"
        assert model.fit(X, y).curvature_structure_ != "cg-rows"
    opted = ErasableLogisticRegression(curvature_structure="cg-rows").fit(X, y)
    assert isinstance(opted.curvature_inverse_, RowCurvature)
    assert check_memory_budget(opted, X, y) == rows
    opted.partial_forget(X[:3], y[:3])
    with pytest.raises(ErasureError, match="forgotten"):
        opted.partial_forget(X[:1], y[:1])  # forgotten already
    assert opted.n_forgotten_ == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_hashes_are_the_same_for_dense_and_sparse_rows(dtype):
    """Dense rows are hashed without a sparse copy, to the same values."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((50, 7)).astype(dtype)
    X[rng.random(X.shape) < 0.5] = 0
    X[0, 0], X[1] = -0.0, 0  # a negative zero, an empty row
    for key in (0, 2**64 - 1, 12345):
        assert_array_equal(row_hashes(X, key), row_hashes(sp.csr_matrix(X), key))
    assert len(np.unique(row_hashes(X))) == len(np.unique(X, axis=0))


def test_row_curvature_hashes_at_fit_and_keeps_them_in_memory_copies():
    import copy

    Xt, V = _rows(n=30, d=5, n_outputs=2)
    prior = np.full(2 * Xt.shape[1], 0.5)
    curvature = RowCurvature.from_rows(
        Xt, V, lambda d: (prior, 1.0), np.zeros((len(prior), 0))
    )
    key, stored = curvature._hashes  # made at the build
    assert_array_equal(stored, row_hashes(Xt, key))
    clone = copy.deepcopy(curvature)  # in memory: the same hashes
    assert clone._hashes[0] == key and clone._hashes[1] is not stored
    assert_array_equal(clone._hashes[1], stored)
    assert pickle.loads(pickle.dumps(curvature))._hashes is None  # never pickled
    e = np.random.default_rng(5).standard_normal(len(prior))
    done = clone.downdated(rows=(Xt[[3, 7]], V[[3, 7]]))
    left = np.setdiff1d(np.arange(30), [3, 7])
    assert_allclose(done.matvec(e), _definition(Xt[left], V[left], prior) @ e)


@pytest.mark.parametrize("sparse", [False, True])
def test_row_curvature_mixing_of_any_stored_pairs(sparse):
    """Every pair (a gather), the diagonal pairs (elementwise) and another set
    of pairs (0/1 maps) apply the same ``Σ_i V_i ⊗ x̃_i x̃_iᵀ``; the null term
    acts on its rows only."""
    Xt, V = _rows(n=25, d=5, n_outputs=3, sparse=sparse)
    c, width = 3, Xt.shape[1]
    prior = np.full(c * width, 0.5)
    null = np.zeros((c * width, 1))
    null[width - 1 :: width, 0] = 1 / np.sqrt(c)  # the intercepts' direction
    e = np.random.default_rng(6).standard_normal(c * width)
    for pairs in (
        [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)],
        [(0, 0), (1, 1), (2, 2)],
        [(0, 0), (0, 2), (1, 1), (2, 2)],
    ):
        a, b = np.array(pairs).T
        kept = np.zeros_like(V)
        kept[:, a, b], kept[:, b, a] = V[:, a, b], V[:, b, a]
        curvature = RowCurvature(
            c, width, pairs, Xt, V[:, a, b], prior, null, rtol=1e-12
        )
        M = _definition(Xt, kept, prior) + null @ null.T
        assert_allclose(curvature.matvec(e), M @ e, rtol=1e-10, atol=1e-10)
        assert_allclose(curvature.diagonal(), np.diag(M), rtol=1e-10)
        # (sparse: CG on the feature-major coordinates, null term included)
        assert_allclose(curvature.apply(e), np.linalg.solve(M, e), rtol=1e-8)
        clone = pickle.loads(pickle.dumps(curvature))
        assert "_feature_major" not in clone.__dict__
        assert_allclose(clone.apply(e), curvature.apply(e), rtol=1e-10)


def test_block_preconditioner_with_any_signs_and_float32():
    """Weights of either sign (a general product, not ``YᵀY``) give the same
    inverse blocks; float32 rows keep float32 blocks, and a dense float32
    multinomial model with ``"cg-rows"`` takes requests with them."""
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((40, 6))
    own = rng.random((40, 2))
    own[3, 1] = -0.01  # one small negative weight
    prior = np.full(12, 2.0)
    blocks = RowCurvature.block_preconditioner(rows, own, prior, 7)
    for a in range(2):
        block = (rows.T * own[:, a]) @ rows + 2.0 * np.eye(6)
        assert_allclose(blocks[a], np.linalg.inv(block), rtol=1e-10)
    X, y = make_classification(
        120, 5, n_informative=4, n_redundant=0, n_classes=3, random_state=0
    )
    X = X.astype(np.float32)
    model = ErasableLogisticRegression(curvature_structure="cg-rows").fit(X, y)
    curvature = model.curvature_inverse_
    assert curvature.blocks is not None and curvature.blocks.dtype == np.float32
    model.partial_forget(X[:4], y[:4])
    assert model.coef_.dtype == np.float32
    assert model.curvature_inverse_.blocks is curvature.blocks  # not downdated


def test_row_curvature_pickled_without_the_newer_attributes():
    """A state pickled before the blocks and the full ``V_i`` existed loads and
    takes requests."""
    Xt, V = _rows(n=30, d=5, n_outputs=2)
    prior = np.full(2 * Xt.shape[1], 0.5)
    curvature = RowCurvature.from_rows(
        Xt, V, lambda d: (prior, 1.0), np.zeros((len(prior), 0))
    )
    state = curvature.__getstate__()
    del state["blocks"]
    old = RowCurvature.__new__(RowCurvature)
    old.__setstate__(state)
    assert old.blocks is None and old.nbytes > 0
    e = np.random.default_rng(8).standard_normal(len(prior))
    assert_allclose(old.matvec(e), curvature.matvec(e))
    done = old.downdated(rows=(Xt[[2]], V[[2]]))
    left = np.setdiff1d(np.arange(30), [2])
    assert_allclose(done.matvec(e), _definition(Xt[left], V[left], prior) @ e)


def test_auto_warns_when_requests_would_cost_more_than_a_refit():
    """ "auto" picking "cg" says so when a request likely costs more than a refit;
    a structure chosen by hand does not warn, and the model works either way."""
    X, y = _wide_sparse()
    with pytest.warns(CostlyErasureWarning, match="cg-rows") as record:
        model = ErasableLogisticRegression().fit(X, y)
    assert model.curvature_structure_ == "cg"
    assert len(record) == 1 and record[0].filename == __file__
    ratio = request_cost_ratio(model.erasure_state_.curvature, X, 1, model.n_iter_[0])
    assert ratio > 1 and f"{ratio:.1f}x" in str(record[0].message)
    model.partial_forget(X[:2], y[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostlyErasureWarning)
        ErasableLogisticRegression(curvature_structure="cg").fit(X, y)
        dense = ErasableLogisticRegression().fit(X[:, :40].toarray(), y)
    assert dense.curvature_structure_ == "blocks"


def test_request_cost_ratio_counts_products_against_solver_passes():
    X, y = _wide_sparse()
    cg = ErasableLogisticRegression(curvature_structure="cg").fit(X, y)
    rows = ErasableLogisticRegression(curvature_structure="cg-rows").fit(X, y)
    stored = cg.erasure_state_.curvature
    nnz = len(stored.pattern[1])
    assert stored.product_cost == 2 * nnz
    assert rows.erasure_state_.curvature.product_cost == 2 * (X.nnz + X.shape[0])
    refit = SOLVER_PASS_COST * 2 * 5 * (X.nnz + X.shape[0])
    assert request_cost_ratio(stored, X, 1, 5) == pytest.approx(
        TYPICAL_CG_PRODUCTS * 2 * nnz / refit
    )
    assert request_cost_ratio(stored, X, 1, 0) is None
    assert request_cost_ratio(object(), X, 1, 5) is None
    # pairs of outputs: one column per own block, two per pair of outputs
    X3, y3 = _wide_sparse(n_classes=3)
    three = ErasableLogisticRegression(curvature_structure="cg").fit(X3, y3)
    curvature = three.erasure_state_.curvature
    assert curvature.product_cost == 2 * (3 + 2 * 3) * len(curvature.pattern[1])


def test_multioutput_gathers_the_outputs_cost_warnings_into_one():
    from sklearn.exceptions import ConvergenceWarning

    from sklearn_ssse import ErasableMultiOutputClassifier

    X, y = _wide_sparse()
    Y = np.column_stack([y, 1 - y, (np.arange(60) // 3) % 2])
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression(max_iter=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, Y)
    costly = [w for w in caught if issubclass(w.category, CostlyErasureWarning)]
    assert len(costly) == 1 and str(costly[0].message).startswith("3 outputs: ")
    assert costly[0].filename == __file__
    # other warnings pass through (once per text and place)
    assert any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert all(e.curvature_structure_ == "cg" for e in model.estimators_)


@pytest.mark.parametrize("chunk", [5, 2**21])
def test_pair_blocks_by_contributions_match_definition(monkeypatch, chunk):
    """The pair blocks from the rows' products (many output pairs), in chunks of
    any size, from rows with unsorted indices and a repeated entry."""
    from sklearn_ssse import _curvature_cg

    monkeypatch.setattr(_curvature_cg, "CONTRIBUTIONS_PER_CHUNK", chunk)
    Xt, V = _rows(n_outputs=3, sparse=True)
    Xt = sp.csr_matrix(Xt)
    coo = Xt.tocoo()
    # every row's entries reversed, and the first entry split into two halves
    order = np.lexsort((-coo.col, coo.row))
    row, col, data = coo.row[order], coo.col[order], coo.data[order].copy()
    data[0] /= 2
    row, col, data = np.r_[row[:1], row], np.r_[col[:1], col], np.r_[data[:1], data]
    messy = sp.csr_matrix(
        (data, col, np.searchsorted(row, np.arange(Xt.shape[0] + 1))), shape=Xt.shape
    )
    assert not messy.has_canonical_format
    before = messy.indices.copy()
    prior = np.full(3 * Xt.shape[1], 0.5)
    curvature = ConjugateGradientCurvature.from_rows(
        messy, V, lambda d: (prior, 1.0), np.zeros((len(prior), 0))
    )
    e = np.random.default_rng(2).standard_normal(len(prior))
    assert_allclose(curvature.matvec(e), _definition(Xt, V, prior) @ e, rtol=1e-10)
    assert_array_equal(messy.indices, before)


def test_multioutput_issues_gathered_warnings_when_a_fit_fails(monkeypatch):
    """Warnings recorded before a failing output's fit are not swallowed."""
    from sklearn_ssse import ErasableMultiOutputClassifier, multioutput

    calls = []

    def failing_fit(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("second output fails")
        warnings.warn("first output's note", UserWarning, stacklevel=2)
        return self

    monkeypatch.setattr(ErasableLogisticRegression, "fit", failing_fit)
    X, y = _wide_sparse()
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="second output"):
            with multioutput._one_cost_warning(None):
                for _ in range(2):
                    model.estimator.fit(X, y)
    assert any("first output's note" in str(w.message) for w in caught)


def test_auto_drops_the_curvature_between_classes_when_requests_would_be_costly():
    """With several classes, "auto" keeps only the class blocks when a request on
    the pair blocks would cost about a refit or more; still costly, it warns."""
    X, y = _wide_sparse(n_classes=3)
    with pytest.warns(CostlyErasureWarning, match="chose 'cg-class'"):
        auto = ErasableLogisticRegression().fit(X, y)
    assert auto.curvature_structure_ == "cg-class"
    assert auto.erasure_state_.curvature.pairs == [(0, 0), (1, 1), (2, 2)]
    by_hand = ErasableLogisticRegression(curvature_structure="cg-class").fit(X, y)
    assert_allclose(
        auto.erasure_state_.curvature.values, by_hand.erasure_state_.curvature.values
    )
    auto.partial_forget(X[:3], y[:3])
    by_hand.partial_forget(X[:3], y[:3])
    assert_allclose(auto.coef_, by_hand.coef_)
    # named by hand, "cg" keeps every pair of classes
    coupled = ErasableLogisticRegression(curvature_structure="cg").fit(X, y)
    assert len(coupled.erasure_state_.curvature.pairs) == 6


def test_auto_keeps_the_curvature_between_classes_when_requests_are_cheap(
    monkeypatch,
):
    from sklearn_ssse import _curvature_structures

    monkeypatch.setattr(_curvature_structures, "COSTLY_REQUEST_RATIO", 1e12)
    X, y = _wide_sparse(n_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostlyErasureWarning)
        auto = ErasableLogisticRegression().fit(X, y)
    assert auto.curvature_structure_ == "cg"
    assert len(auto.erasure_state_.curvature.pairs) == 6


@pytest.mark.parametrize("sparse", [True, False])
def test_class_coupling_rule_compares_pair_products_with_the_solver(sparse):
    from sklearn_ssse._curvature_structures import (
        COSTLY_REQUEST_RATIO,
        class_coupling_rule,
    )

    X, _ = _wide_sparse()
    if not sparse:
        X = X[:, :50].toarray()
    entries = X.nnz + X.shape[0] if sparse else X.shape[0] * (X.shape[1] + 1)
    solver = SOLVER_PASS_COST * 2 * 7 * entries * 4
    per_entry = (2 if sparse else 1) * 16 * TYPICAL_CG_PRODUCTS
    couple = class_coupling_rule(X, 4, 7)
    largest = int(COSTLY_REQUEST_RATIO * solver // per_entry)
    assert couple(largest) and not couple(largest + 1)
    assert couple(0)


@pytest.mark.parametrize("duplicates", [True, False])
def test_upper_triangle_matches_scipy_triu(duplicates):
    from sklearn_ssse._curvature_cg import _upper_gram, _upper_triangle

    rng = np.random.default_rng(3)
    A = sp.random(30, 30, density=0.2, format="coo", random_state=3)
    if duplicates:  # repeated entries, unsorted rows
        A = sp.coo_matrix(
            (
                np.r_[A.data, A.data[:5]],
                (np.r_[A.row, A.row[:5]], np.r_[A.col, A.col[:5]]),
            ),
            shape=A.shape,
        )
        P = sp.csr_matrix((A.data, (A.row, A.col)), shape=A.shape)
        P = sp.csr_matrix((P.data[::-1], P.indices[::-1], P.indptr), shape=P.shape)
    else:
        P = A.tocsr()
    U = _upper_triangle(P.copy(), duplicates=duplicates)
    expected = sp.triu(P, format="csr")
    expected.sum_duplicates()
    expected.sort_indices()
    assert U.has_sorted_indices
    assert np.array_equal(U.indptr, expected.indptr)
    assert np.array_equal(U.indices, expected.indices)
    assert_allclose(U.data, expected.data)
    # the Gram of rows with unsorted, repeated entries
    X = sp.csr_matrix(rng.random((20, 8)) * (rng.random((20, 8)) < 0.4))
    v = rng.random(20)
    G = _upper_gram(X, v)
    assert_allclose(G.toarray(), np.triu((X.T.toarray() * v) @ X.toarray()))
