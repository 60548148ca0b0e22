"""The curvature of sparse input: sparse products, equal to the dense build."""

from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from sklearn_ssse import ErasableLogisticRegression, _linalg, _logistic_maths
from sklearn_ssse._curvature import block_bounds
from sklearn_ssse._linalg import add_sparse_into
from sklearn_ssse._logistic_maths import (
    LogisticMaths,
    sparse_products_pay,
    sparse_row_chunks,
)


def _sparse_problem(n_classes, dtype=np.float64, n=60, m=17, density=0.15, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, m)) * (rng.uniform(size=(n, m)) < density)
    dense[3] = 0  # an empty row
    X = sp.csr_matrix(dense.astype(dtype))
    y = np.arange(n) % n_classes
    weights = rng.uniform(0.5, 2.0, size=n).astype(dtype)
    return X, y, weights


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind", ["fisher", "hessian"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("block_size", [None, "class", 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_blocks_equal_dense_blocks(
    n_classes, kind, fit_intercept, block_size, dtype
):
    X, y, weights = _sparse_problem(n_classes, dtype)
    maths = LogisticMaths(X.shape[1], n_classes, fit_intercept, intercept_scaling=1.7)
    rng = np.random.default_rng(1)
    theta = rng.normal(size=maths.n_params).astype(dtype)
    active = np.ones(n_classes, dtype=bool)
    bounds = block_bounds(maths.n_params, block_size, maths.group_bounds())
    args = (y, weights, theta, active, kind, bounds)
    # sparse products, over small chunks so that several add into the blocks
    with (
        mock.patch.object(_logistic_maths, "SPARSE_PRODUCT_COST", 0),
        mock.patch.object(_logistic_maths, "MAX_SPARSE_CHUNK_BYTES", 4000),
    ):
        assert sparse_products_pay(X, maths.width)
        assert len(list(sparse_row_chunks(X))) > 3
        got = maths.curvature_blocks(X, *args)
    expected = maths.curvature_blocks(X.toarray(), *args)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == dtype
        assert_allclose(g, e, rtol=tolerance, atol=tolerance)
        assert_allclose(g, g.T)


def test_dense_enough_sparse_input_is_densified_by_chunks():
    X, y, weights = _sparse_problem(2, density=0.9)
    maths = LogisticMaths(X.shape[1], 2, True)
    assert not sparse_products_pay(X, maths.width)
    theta = np.zeros(maths.n_params)
    args = (y, weights, theta, np.ones(2, bool), "hessian", [(0, maths.n_params)])
    got = maths.curvature_blocks(X, *args)
    assert_allclose(got[0], maths.curvature_blocks(X.toarray(), *args)[0])


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil", "csr_array"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fit_and_forget_on_every_sparse_format_equal_dense(fmt, n_classes):
    X, y, _ = _sparse_problem(n_classes, n=80, density=0.3)
    dense = ErasableLogisticRegression(curvature="hessian").fit(X.toarray(), y)
    Xs = sp.csr_array(X) if fmt == "csr_array" else X.asformat(fmt)
    model = ErasableLogisticRegression(curvature="hessian").fit(Xs, y)
    assert_allclose(
        model.curvature_inverse_.to_dense(),
        dense.curvature_inverse_.to_dense(),
        rtol=1e-6,
        atol=1e-9,
    )
    dense.partial_forget(X[:30].toarray(), y[:30])  # 30 rows: the high-rank path
    model.partial_forget(Xs.tocsr()[:30], y[:30])
    assert_allclose(model.coef_, dense.coef_, rtol=1e-6, atol=1e-9)


def test_float32_sparse_fit_keeps_float32():
    X, y, _ = _sparse_problem(3, np.float32, n=80, density=0.3)
    model = ErasableLogisticRegression(curvature="hessian").fit(X, y)
    assert model.curvature_inverse_.dtype == np.float32
    model.partial_forget(X[:5], y[:5])
    assert model.coef_.dtype == np.float32


@pytest.mark.parametrize("layout", ["contiguous", "view", "offset"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_add_sparse_into_adds_the_stored_entries(layout, dtype):
    rng = np.random.default_rng(0)
    P = sp.random(5, 4, density=0.5, random_state=0, format="coo", dtype=np.float64)
    P = sp.coo_matrix(
        (np.r_[P.data, 1.5], (np.r_[P.row, 0], np.r_[P.col, 0])), shape=(5, 4)
    )  # with a duplicate entry
    base = rng.normal(size=(8, 9)).astype(dtype)
    out = base.copy()
    if layout == "contiguous":
        out, base, offset = out[:5, :4].copy(), base[:5, :4], (0, 0)
        add_sparse_into(out, P)
        got = out
    elif layout == "view":
        add_sparse_into(out[2:7, 3:7], P)
        got, offset = out, (2, 3)
    else:
        add_sparse_into(out, P, offset=(2, 3))
        got, offset = out, (2, 3)
    expected = base.astype(np.float64)
    i, j = offset
    expected[i : i + 5, j : j + 4] += P.toarray()
    assert got.dtype == dtype
    assert_allclose(got, expected, rtol=1e-6)


def test_add_sparse_into_without_scipys_kernel():
    P = sp.random(6, 6, density=0.4, random_state=1, format="csr")
    out = np.ones((8, 8))
    with mock.patch.object(_linalg, "_csr_add_into", None):
        add_sparse_into(out, P, offset=(1, 2))
    expected = np.ones((8, 8))
    expected[1:7, 2:8] += P.toarray()
    assert_allclose(out, expected)


def test_sparse_build_time_follows_the_non_zeros():
    """No d × d work per chunk: a wide, very sparse problem builds at once."""
    n, m = 400, 3000
    X = sp.random(n, m, density=0.002, random_state=0, format="csr")
    y = np.arange(n) % 2
    maths = LogisticMaths(m, 2, True)
    calls = []
    original = _linalg.as_dense

    def counting(matrix):  # a densified d × d product would go through here
        calls.append(matrix.shape)
        return original(matrix)

    with mock.patch.object(_logistic_maths, "as_dense", counting):
        maths.curvature_blocks(
            X,
            y,
            np.ones(n),
            np.zeros(maths.n_params),
            np.ones(2, bool),
            "hessian",
            [(0, maths.n_params)],
        )
    assert calls == []


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fused_blocks_and_gradient_sums_equal_the_separate_passes(sparse, n_classes):
    """The build's single pass gives the blocks and the class sums of two passes."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=300,
        n_features=12,
        n_informative=6,
        n_classes=n_classes,
        random_state=0,
    )
    X = sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0)) if sparse else X
    model = ErasableLogisticRegression().fit(X, y)
    maths = model._erasure_maths()
    theta = model._get_flat_params()
    active = np.ones(n_classes, dtype=bool)
    weights = np.linspace(0.5, 2.0, len(y))
    sample_weight = np.linspace(1.0, 3.0, len(y))
    bounds = [(0, maths.n_params)]
    blocks, sums = maths.curvature_blocks_and_gradient_sums(
        X, y, weights, sample_weight, theta, active, "hessian", bounds, n_classes
    )
    expected = maths.curvature_blocks(X, y, weights, theta, active, "hessian", bounds)
    np.testing.assert_allclose(blocks[0], expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        sums,
        maths.gradient_sums(X, y, sample_weight, theta, active, n_classes),
        rtol=1e-12,
        atol=1e-12,
    )
