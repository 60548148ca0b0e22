"""The request's fast paths give what the plain paths give (issue 13)."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_ssse import ErasableLogisticRegression, _linalg
from sklearn_ssse._curvature import BlockDiagonalInverse, CurvatureInverse
from sklearn_ssse._linalg import symmetric_rank_update, woodbury_downdate_apply
from sklearn_ssse.exceptions import InvalidRequestError
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier


def _spd_inverse(d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(3 * d, d))
    M = G.T @ G + d * np.eye(d)
    return np.ascontiguousarray(np.linalg.inv(M)).astype(dtype), M


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rank", [0, 1, 3, 30])
@pytest.mark.parametrize("in_place_min_bytes", [0, 2**40])
def test_woodbury_downdate_apply_equals_direct(
    dtype, rank, in_place_min_bytes, monkeypatch
):
    # 0: scipy's in-place BLAS update; 2**40: numpy's panels (both paths).
    monkeypatch.setattr(_linalg, "IN_PLACE_MIN_BYTES", in_place_min_bytes)
    d = 150
    M_inv, M = _spd_inverse(d, dtype)
    before = M_inv.copy()
    rng = np.random.default_rng(1)
    U = (rng.normal(size=(d, rank)) * 0.5).astype(dtype)
    g = rng.normal(size=d).astype(dtype)
    new, old_applied, new_applied = woodbury_downdate_apply(M_inv, U, g)
    direct = np.linalg.inv(M - U.astype(np.float64) @ U.T.astype(np.float64))
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    scale = np.abs(direct).max()
    assert new.dtype == old_applied.dtype == new_applied.dtype == dtype
    assert_allclose(new, direct, atol=rtol * scale)
    assert_allclose(new, new.T, atol=rtol * scale)
    assert_allclose(old_applied, M_inv @ g, rtol=rtol, atol=rtol * scale)
    assert_allclose(new_applied, direct @ g, rtol=rtol, atol=rtol * np.abs(g).sum())
    assert_array_equal(M_inv, before)  # the stored inverse is never written to


def test_woodbury_downdate_apply_refuses_an_indefinite_result():
    M_inv = np.eye(3)
    with pytest.raises(np.linalg.LinAlgError):
        woodbury_downdate_apply(M_inv, np.array([[2.0], [0.0], [0.0]]), np.ones(3))


@pytest.mark.parametrize("rank", [1, 2, 5, 40])
def test_symmetric_rank_update(rank):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(130, 130))
    A = A + A.T
    V = rng.normal(size=(130, rank))
    before = A.copy()
    assert_allclose(symmetric_rank_update(A, V), A + V @ V.T, rtol=1e-12, atol=1e-12)
    assert_array_equal(A, before)


def test_block_diagonal_downdated_and_applied_matches_the_plain_path():
    rng = np.random.default_rng(0)
    bounds = [(0, 7), (7, 20), (20, 21)]
    blocks = []
    for s, e in bounds:
        G = rng.normal(size=(40, e - s))
        blocks.append(G.T @ G + np.eye(e - s))
    inverse = BlockDiagonalInverse.from_blocks(bounds, [b.copy() for b in blocks])
    before = [inv.copy() for inv in inverse.inverses]
    U = rng.normal(size=(21, 2)) * 0.3
    factors = [U[s:e] for s, e in bounds]
    g = rng.normal(size=21)
    new, old_applied, new_applied = inverse.downdated_and_applied(factors, g)
    plain = CurvatureInverse.downdated_and_applied(inverse, factors, g)
    assert_allclose(new.to_dense(), plain[0].to_dense(), rtol=1e-10, atol=1e-12)
    assert_allclose(old_applied, plain[1], rtol=1e-10, atol=1e-12)
    assert_allclose(new_applied, plain[2], rtol=1e-10, atol=1e-12)
    for inv, old in zip(inverse.inverses, before):
        assert_array_equal(inv, old)


def _plain_path(monkeypatch):
    """Make requests take the engine's plain path (downdate, then apply)."""
    monkeypatch.setattr(
        BlockDiagonalInverse,
        "downdated_and_applied",
        CurvatureInverse.downdated_and_applied,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("leave_out", [True, False])
def test_sequential_requests_match_the_plain_path(
    dtype, n_classes, leave_out, monkeypatch
):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(dtype)
    y = rng.integers(0, n_classes, size=300)
    fast = ErasableLogisticRegression(leave_out=leave_out).fit(X, y)
    plain = copy.deepcopy(fast)
    first = fast.erasure_state_
    first_inverse = [inv.copy() for inv in first.curvature.inverses]
    first_coef = first.coefficients.copy()
    for rows in (slice(0, 1), slice(1, 31), slice(31, 32)):
        fast.partial_forget(X[rows], y[rows])
    with monkeypatch.context() as m:
        _plain_path(m)
        for rows in (slice(0, 1), slice(1, 31), slice(31, 32)):
            plain.partial_forget(X[rows], y[rows])
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert fast.coef_.dtype == dtype
    assert fast.curvature_inverse_.dtype == dtype
    assert_allclose(fast.coef_, plain.coef_, rtol=tol, atol=tol)
    assert_allclose(fast.intercept_, plain.intercept_, rtol=tol, atol=tol)
    assert_allclose(
        fast.curvature_inverse_.to_dense(),
        plain.curvature_inverse_.to_dense(),
        rtol=tol,
        atol=tol,
    )
    # The state published before the requests was never written to.
    for inv, old in zip(first.curvature.inverses, first_inverse):
        assert_array_equal(inv, old)
    assert_array_equal(first.coefficients, first_coef)
    assert first.n_forgotten == 0


def test_fast_validation_equals_full_validation():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = rng.integers(0, 2, size=200)
    model = ErasableLogisticRegression().fit(X, y)
    by_array = copy.deepcopy(model).partial_forget(X[:3], y[:3])
    by_list = copy.deepcopy(model).partial_forget(X[:3].tolist(), y[:3].tolist())
    assert_array_equal(by_array.coef_, by_list.coef_)
    with pytest.raises(InvalidRequestError, match="NaN"):
        bad = X[:2].copy()
        bad[0, 0] = np.nan
        model.partial_forget(bad, y[:2])
    with pytest.raises(InvalidRequestError, match="features"):
        model.partial_forget(X[:2, :4], y[:2])
    with pytest.raises(InvalidRequestError):
        model.partial_forget(X[:2], np.array([0.0, np.nan]))


@pytest.mark.parametrize("sparse", [False, True])
def test_duplicated_rows_are_refused(sparse):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = rng.integers(0, 2, size=200)
    model = ErasableLogisticRegression().fit(X, y)
    state = model.erasure_state_
    rows = X[[0, 1, 0]]
    rows = sp.csr_matrix(rows) if sparse else rows
    if sparse:
        model = ErasableLogisticRegression().fit(sp.csr_matrix(X), y)
        state = model.erasure_state_
    with pytest.raises(InvalidRequestError, match="more than once"):
        model.partial_forget(rows, y[[0, 1, 0]])
    assert model.erasure_state_ is state
    # -0.0 and 0.0 are the same value
    Z = X[[0, 0]].copy()
    Z[0, 0], Z[1, 0] = 0.0, -0.0
    if not sparse:
        with pytest.raises(InvalidRequestError, match="more than once"):
            model.partial_forget(Z, y[[0, 0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multioutput_sequential_path_matches_threads(dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 6)).astype(dtype)
    Y = (X @ rng.normal(size=(6, 3)) + rng.normal(size=(150, 3)) > 0).astype(int)
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    threads = copy.deepcopy(model).set_params(n_jobs=2)
    old = model.estimators_
    old_inverse = [e.curvature_inverse_.inverses[0].copy() for e in old]
    model.partial_forget(X[:1], Y[:1]).partial_forget(X[1:20], Y[1:20])
    threads.partial_forget(X[:1], Y[:1]).partial_forget(X[1:20], Y[1:20])
    for a, b in zip(model.estimators_, threads.estimators_):
        assert a.coef_.dtype == dtype
        assert_allclose(a.coef_, b.coef_, rtol=1e-6, atol=1e-6)
    for est, inverse in zip(old, old_inverse):
        assert_array_equal(est.curvature_inverse_.inverses[0], inverse)
        assert est.n_forgotten_ == 0


def test_requests_validate_parameters_changed_since_the_last_request():
    from sklearn.utils._param_validation import InvalidParameterError

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    y = rng.integers(0, 2, size=100)
    model = ErasableLogisticRegression().fit(X, y)
    model.partial_forget(X[:1], y[:1])
    model.set_params(forget_scale=-1.0)
    with pytest.raises(InvalidParameterError):
        model.partial_forget(X[1:2], y[1:2])
    model.set_params(forget_scale=0.5)
    model.partial_forget(X[1:2], y[1:2])
    assert model.erasure_state_.n_forgotten == 2
