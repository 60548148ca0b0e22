"""The fast dense build (issue 26): numpy's BLAS over chunks of rows, float32 chunk
products summed in float64, the class sums in one GEMM, the certificate's Gram from
the same chunks. Correctness only: the timings are in benchmarks/bench_million.py."""

from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy.special import expit

from sklearn_ssse import ErasableLogisticRegression, _linalg, _logistic_maths
from sklearn_ssse._curvature import block_bounds
from sklearn_ssse._linalg import accumulate_gram
from sklearn_ssse._logistic_maths import LogisticMaths, gram_chunk_rows
from sklearn_ssse._memory import estimate_block_diagonal

# Several chunks on small data: the accumulation across chunks is what is tested.
SMALL_CHUNKS = dict(GRAM_CHUNK_ROWS=7, MAX_CHUNK_BYTES=2000)

# Norm-wise relative error of a float32 step against its float64 definition
# (measured 4e-7 binary, 7e-6 with 3 classes; the inverse is float32 either way).
FLOAT32_STEP_RTOL = 1e-4


def _problem(n_classes, dtype, n=90, m=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m)).astype(dtype)
    y = np.arange(n) % n_classes
    weights = rng.uniform(0.5, 2.0, size=n).astype(dtype)
    return X, y, weights


def _definition(maths, X, y, weights, theta, kind):
    """``Σ_i w_i K_i`` in float64 from the per-row factors (dense, all rows)."""
    X64, theta64 = np.asarray(X, np.float64), np.asarray(theta, np.float64)
    active = np.ones(maths.n_classes, dtype=bool)
    rows = maths.factor_rows(X64, y, theta64, active, kind)
    return np.einsum("i,iqa,iqb->ab", np.asarray(weights, np.float64), rows, rows)


def _chunked(**values):
    return mock.patch.multiple(_logistic_maths, **values)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind", ["fisher", "hessian"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("block_size", [None, "class", 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dense_blocks_equal_the_float64_definition(
    n_classes, kind, fit_intercept, block_size, dtype
):
    X, y, weights = _problem(n_classes, dtype)
    maths = LogisticMaths(X.shape[1], n_classes, fit_intercept, intercept_scaling=1.7)
    theta = np.random.default_rng(1).normal(size=maths.n_params).astype(dtype)
    active = np.ones(n_classes, dtype=bool)
    bounds = block_bounds(maths.n_params, block_size, maths.group_bounds())
    with _chunked(**SMALL_CHUNKS):
        blocks, sums = maths.curvature_blocks_and_gradient_sums(
            X, y, weights, weights, theta, active, kind, bounds, n_classes
        )
        alone = maths.curvature_blocks(X, y, weights, theta, active, kind, bounds)
    full = _definition(maths, X, y, weights, theta, kind)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for block, other, (start, stop) in zip(blocks, alone, bounds, strict=True):
        assert block.dtype == dtype and other.dtype == dtype
        expected = full[start:stop, start:stop]
        scale = np.abs(expected).max()
        assert_allclose(block, expected, rtol=tolerance, atol=tolerance * scale)
        assert_allclose(other, block, rtol=tolerance, atol=tolerance * scale)
        assert_allclose(block, block.T)
    # the class sums: every row's gradient summed by class, in the state's dtype
    G = maths.gradient_rows(X.astype(np.float64), y, theta.astype(np.float64), active)
    expected = np.stack([weights[y == a] @ G[y == a] for a in range(n_classes)])
    assert sums.dtype == dtype
    assert_allclose(sums, expected, rtol=tolerance, atol=tolerance * 10)


@pytest.mark.parametrize("sparse_X", [False, True])
@pytest.mark.parametrize("constant", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_certificate_gram_from_the_same_chunks(sparse_X, constant, dtype):
    X, y, weights = _problem(2, dtype)
    b = np.full(len(y), 2.5) if constant else np.linspace(0.1, 3.0, len(y))
    maths = LogisticMaths(X.shape[1], 2, True, intercept_scaling=1.3)
    theta = np.zeros(maths.n_params, dtype=dtype)
    bounds = [(0, maths.n_params)]
    Xin = sp.csr_matrix(X) if sparse_X else X
    with _chunked(**SMALL_CHUNKS, SPARSE_PRODUCT_COST=0):
        blocks, sums, gram = maths.curvature_blocks_and_gradient_sums(
            Xin,
            y,
            weights,
            weights,
            theta,
            np.ones(2, bool),
            "hessian",
            bounds,
            2,
            gram_weights=b,
        )
    Xt = np.hstack([X.astype(np.float64), np.full((len(y), 1), 1.3)])
    assert gram.dtype == np.float64
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(gram, Xt.T @ (b[:, None] * Xt), rtol=tolerance, atol=tolerance)
    # the blocks are those of a build without the Gram
    plain, _ = maths.curvature_blocks_and_gradient_sums(
        Xin, y, weights, weights, theta, np.ones(2, bool), "hessian", bounds, 2
    )
    assert_allclose(blocks[0], plain[0], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("binary", [True, False])
def test_float32_step_equals_its_float64_definition(binary):
    """The fast float32 build's inverse gives the step of METHOD.md (1) computed in
    float64 at the same fitted point, to FLOAT32_STEP_RTOL norm-wise."""
    n_classes = 2 if binary else 3
    X, y, _ = _problem(n_classes, np.float32, n=400, m=8, seed=3)
    X[:, 0] += (y - 0.5).astype(np.float32)  # some signal
    with _chunked(**SMALL_CHUNKS):
        model = ErasableLogisticRegression(curvature="hessian", leave_out=False)
        model.fit(X, y)
    assert model.curvature_inverse_.dtype == np.float32
    # the float64 definition at the fitted float32 point
    X64 = X.astype(np.float64)
    coef = model.coef_.astype(np.float64)
    Theta = np.hstack([coef, model.intercept_.astype(np.float64)[:, None]])
    maths = LogisticMaths(X.shape[1], n_classes, True)
    theta = Theta.ravel()
    active = np.ones(n_classes, bool)
    data = model.C * _definition(maths, X64, y, np.ones(len(y)), theta, "hessian")
    state = model.erasure_state_
    M = data + np.diag(state.prior.astype(np.float64))
    if not binary:  # the softmax's flat intercept direction (ModelMaths)
        v = maths.null_directions()[:, 0]
        M += np.mean(np.diag(data)) * np.outer(v, v)
    inverse = model.curvature_inverse_.to_dense().astype(np.float64)
    error = np.linalg.norm(inverse - np.linalg.inv(M)) / np.linalg.norm(
        np.linalg.inv(M)
    )
    assert error < FLOAT32_STEP_RTOL, error
    # the step for the first 5 rows
    S = np.arange(5)
    G = maths.gradient_rows(X64, y, theta, active)
    residual = state.residual_gradient.astype(np.float64)
    gradient = residual - model.C * G[S].sum(axis=0)
    expected = theta - np.linalg.solve(M, gradient)
    model.partial_forget(X[S], y[S])
    got = np.hstack([model.coef_, model.intercept_[:, None]]).ravel()
    step = np.linalg.norm(expected - theta)
    assert np.linalg.norm(got - expected) < FLOAT32_STEP_RTOL * step + 1e-6


def test_a_build_makes_no_scipy_blas_call_on_small_blocks():
    """The build's products stay in numpy's BLAS (no switch to scipy's OpenBLAS
    thread pool between numpy's calls on the same chunk)."""
    X, y, weights = _problem(2, np.float32, n=300)
    maths = LogisticMaths(X.shape[1], 2, True)
    theta = np.zeros(maths.n_params, np.float32)
    with (
        _chunked(**SMALL_CHUNKS),
        mock.patch.object(_linalg, "get_blas_funcs", side_effect=AssertionError),
    ):
        maths.curvature_blocks_and_gradient_sums(
            X,
            y,
            weights,
            weights,
            theta,
            np.ones(2, bool),
            "hessian",
            [(0, maths.n_params)],
            2,
            gram_weights=np.ones(len(y)),
        )
        # in_place=True on a small target: numpy's product, added
        out = np.zeros((X.shape[1], X.shape[1]))
        accumulate_gram(out, X, X, same=True, in_place=True)
    assert_allclose(np.tril(out), np.tril(X.T.astype(float) @ X), atol=1e-3)


def test_in_place_is_kept_where_the_temporary_outweighs_the_chunk():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 40))
    out = np.zeros((40, 40))
    with mock.patch.object(_linalg, "IN_PLACE_MIN_BYTES", 0):
        accumulate_gram(out, A, A, same=True, in_place=True)
    assert_allclose(np.tril(out), np.tril(A.T @ A))


def test_chunk_rows_are_bounded():
    # narrow blocks: GRAM_CHUNK_ROWS, more for very narrow rows, within the budget
    assert gram_chunk_rows(800, [(0, 200)], 4) == _logistic_maths.GRAM_CHUNK_ROWS
    assert gram_chunk_rows(80, [(0, 20)], 4) == 2**20 // 80
    with mock.patch.object(_logistic_maths, "MAX_CHUNK_BYTES", 2**19):
        assert gram_chunk_rows(8, [(0, 2)], 4) == 2**19 // 8
    # wide blocks: at least GRAM_CHUNK_ROWS rows, never more than a block's bytes
    rows = gram_chunk_rows(4 * 3000, [(0, 3000)], 4)
    assert rows == _logistic_maths.GRAM_CHUNK_ROWS
    assert rows * 4 * 3000 <= 4 * 3000**2
    rows = gram_chunk_rows(4 * 600, [(0, 600)], 4)
    assert rows * 4 * 600 <= max(4 * 600**2, 4 * 2**20)


def test_the_estimate_counts_the_float64_sums_of_a_float32_build():
    bounds = [(0, 300)]
    f32 = estimate_block_diagonal(bounds, np.float32, n_samples=10, n_classes=2)
    f64 = estimate_block_diagonal(bounds, np.float64, n_samples=10, n_classes=2)
    blocks = 300**2 * 4
    # float32: the blocks summed in float64, a chunk product and a chunk
    assert f32.fit_peak_bytes >= 4 * blocks
    assert f64.fit_peak_bytes >= 3 * 2 * blocks


def test_the_probabilities_are_those_of_the_model():
    """The fused build uses p = σ(x̃ᵀθ) of the fitted point (a float32 check)."""
    X, y, weights = _problem(2, np.float32, n=50)
    maths = LogisticMaths(X.shape[1], 2, True)
    theta = np.linspace(-1, 1, maths.n_params).astype(np.float32)
    with _chunked(**SMALL_CHUNKS):
        (block,), _ = maths.curvature_blocks_and_gradient_sums(
            X,
            y,
            weights,
            weights,
            theta,
            np.ones(2, bool),
            "hessian",
            [(0, maths.n_params)],
            2,
        )
    Xt = np.hstack([X, np.ones((len(y), 1), np.float32)]).astype(np.float64)
    p = expit(Xt @ theta.astype(np.float64))
    expected = Xt.T @ ((weights * p * (1 - p))[:, None] * Xt)
    assert_allclose(block, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_class_sums_of_saturated_rows(n_classes, dtype):
    """Rows whose probability saturates (curvature weight 0, some misclassified)
    add their class sums directly, not through the SYRK's ``R / √v`` columns."""
    X, y, weights = _problem(n_classes, dtype, n=60)
    X[:20] *= 200  # |x̃ᵀθ| in the hundreds: p(1 − p) = 0 in floating point
    maths = LogisticMaths(X.shape[1], n_classes, True)
    theta = np.random.default_rng(2).normal(size=maths.n_params).astype(dtype)
    active = np.ones(n_classes, dtype=bool)
    bounds = [(0, maths.n_params)]
    with _chunked(**SMALL_CHUNKS):
        blocks, sums = maths.curvature_blocks_and_gradient_sums(
            X, y, weights, weights, theta, active, "hessian", bounds, n_classes
        )
    G = maths.gradient_rows(X.astype(np.float64), y, theta.astype(np.float64), active)
    expected = np.stack([weights[y == a] @ G[y == a] for a in range(n_classes)])
    assert np.all(np.isfinite(sums)) and np.all(np.isfinite(blocks[0]))
    scale = np.abs(expected).max()
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(sums, expected, rtol=tolerance, atol=tolerance * scale)
    full = _definition(maths, X, y, weights, theta, "hessian")
    scale = np.abs(full).max()
    assert_allclose(blocks[0], full, rtol=tolerance, atol=tolerance * scale)
