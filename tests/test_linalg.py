"""Linear-algebra identities behind the inverse curvature (hypothesis-driven)."""

from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from sklearn_ssse import _linalg
from sklearn_ssse._curvature import BlockDiagonalInverse, block_bounds
from sklearn_ssse._linalg import (
    accumulate_gram,
    gram_downdate,
    projected_downdate,
    sherman_morrison_inverse,
    spd_inverse,
    symmetrize_from_lower,
    woodbury_downdate,
)

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def spd_problems(draw, max_d=12, max_rank=6):
    """A positive definite ``M = D + Σ_i w_i g_i g_iᵀ`` and rows to take out of it."""
    d = draw(st.integers(1, max_d))
    n = draw(st.integers(1, 3 * max_d))
    k = draw(st.integers(0, min(n, max_rank)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(n, d))
    w = rng.uniform(0.1, 2.0, size=n)
    diagonal = rng.uniform(0.5, 2.0, size=d)
    return G, w, diagonal, k


def _dense(G, w, diagonal):
    return np.diag(diagonal) + (G * w[:, None]).T @ G


@SETTINGS
@given(spd_problems())
def test_spd_inverse_matches_numpy(problem):
    G, w, diagonal, _ = problem
    M = _dense(G, w, diagonal)
    assert_allclose(spd_inverse(M), np.linalg.inv(M), rtol=1e-8, atol=1e-10)


@SETTINGS
@given(spd_problems())
def test_rank_one_recursion_equals_direct_inverse(problem):
    """The paper's eq. 7 (n Sherman–Morrison steps) gives the direct inverse."""
    G, w, diagonal, _ = problem
    expected = np.linalg.inv(_dense(G, w, diagonal))
    assert_allclose(
        sherman_morrison_inverse(G, w, diagonal), expected, rtol=1e-8, atol=1e-10
    )


@SETTINGS
@given(spd_problems())
def test_woodbury_downdate_equals_rebuild(problem):
    G, w, diagonal, k = problem
    M_inv = np.linalg.inv(_dense(G, w, diagonal))
    U = (G[:k] * np.sqrt(w[:k])[:, None]).T
    expected = np.linalg.inv(_dense(G[k:], w[k:], diagonal))
    assert_allclose(woodbury_downdate(M_inv, U), expected, rtol=1e-7, atol=1e-9)


@SETTINGS
@given(spd_problems())
def test_gram_downdate_equals_rebuild(problem):
    G, w, diagonal, k = problem
    M_inv = np.linalg.inv(_dense(G, w, diagonal))
    W = (G[:k] * w[:k, None]).T @ G[:k]
    expected = np.linalg.inv(_dense(G[k:], w[k:], diagonal))
    assert_allclose(gram_downdate(M_inv, W), expected, rtol=1e-7, atol=1e-9)


def test_downdates_refuse_an_indefinite_result():
    M_inv = np.eye(2)
    with pytest.raises(np.linalg.LinAlgError):
        woodbury_downdate(M_inv, np.array([[2.0], [0.0]]))
    with pytest.raises(np.linalg.LinAlgError):
        gram_downdate(M_inv, np.diag([4.0, 0.0]))
    with pytest.raises(np.linalg.LinAlgError):
        spd_inverse(np.diag([1.0, -1.0]))


@SETTINGS
@given(spd_problems(max_d=15), st.one_of(st.none(), st.integers(1, 7)))
def test_block_diagonal_inverse_applies_and_downdates_blockwise(problem, block_size):
    G, w, diagonal, k = problem
    d = G.shape[1]
    bounds = block_bounds(d, block_size, [(0, d)])
    M = _dense(G, w, diagonal)
    blocks = [M[s:e, s:e].copy() for s, e in bounds]
    inverse = BlockDiagonalInverse.from_blocks(bounds, blocks)
    dense_inverse = np.zeros_like(M)
    for s, e in bounds:
        dense_inverse[s:e, s:e] = np.linalg.inv(M[s:e, s:e])
    assert_allclose(inverse.to_dense(), dense_inverse, rtol=1e-8, atol=1e-10)
    v = np.arange(d, dtype=float)
    assert_allclose(inverse.apply(v), dense_inverse @ v, rtol=1e-8, atol=1e-10)

    U = (G[:k] * np.sqrt(w[:k])[:, None]).T
    by_factors = inverse.downdated(factors=[U[s:e] for s, e in bounds])
    by_grams = inverse.downdated(grams=[U[s:e] @ U[s:e].T for s, e in bounds])
    M_rest = _dense(G[k:], w[k:], diagonal)
    for s, e in bounds:
        expected = np.linalg.inv(M_rest[s:e, s:e])
        assert_allclose(by_factors.to_dense()[s:e, s:e], expected, rtol=1e-7, atol=1e-9)
        assert_allclose(by_grams.to_dense()[s:e, s:e], expected, rtol=1e-7, atol=1e-9)
    # the original is untouched
    assert_allclose(inverse.to_dense(), dense_inverse, rtol=1e-8, atol=1e-10)


def test_block_bounds():
    assert block_bounds(7, None, [(0, 3), (3, 7)]) == [(0, 7)]
    assert block_bounds(7, "class", [(0, 3), (3, 7)]) == [(0, 3), (3, 7)]
    assert block_bounds(7, 3, [(0, 7)]) == [(0, 3), (3, 6), (6, 7)]
    with pytest.raises(ValueError):
        block_bounds(7, 0, [(0, 7)])


@SETTINGS
@given(
    st.integers(1, 30),
    st.integers(1, 9),
    st.booleans(),
    st.sampled_from(["dense", "sparse", "view"]),
    st.sampled_from([np.float64, np.float32]),
    st.booleans(),
)
def test_accumulate_gram_matches_definition(n, d, same, layout, dtype, in_place):
    rng = np.random.default_rng(n * 100 + d)
    A = rng.normal(size=(n, d)).astype(dtype)
    B = A if same else rng.normal(size=(n, d)).astype(dtype)
    v = rng.uniform(0.1, 2.0, size=n).astype(dtype)
    expected = A.T.astype(float) @ (v[:, None] * B)
    if layout == "sparse":
        A, B = sp.csr_matrix(A), (sp.csr_matrix(A) if same else sp.csr_matrix(B))
    start = np.eye(d + 2, dtype=dtype)
    out = start.copy()
    target = out[1 : d + 1, 1 : d + 1] if layout == "view" else out[:d, :d]
    # in_place: scipy's BLAS writes into ``out`` (as for large blocks)
    with mock.patch.object(_linalg, "IN_PLACE_MIN_BYTES", 0 if in_place else 2**62):
        accumulate_gram(target, A, B, v, same=same)
    if same:  # a SYRK fills the lower triangle only: compare that
        expected = np.tril(expected) + np.tril(expected, -1).T
        target = np.tril(target) + np.tril(target, -1).T
    base = start[1 : d + 1, 1 : d + 1] if layout == "view" else start[:d, :d]
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    assert_allclose(target - base, expected, rtol=tolerance, atol=tolerance)


def test_symmetrize_from_lower_in_panels():
    A = np.tril(np.arange(49.0).reshape(7, 7))
    expected = A + np.tril(A, -1).T
    assert_allclose(symmetrize_from_lower(A, panel=3), expected)


@SETTINGS
@given(spd_problems())
def test_projected_downdate_is_the_plain_downdate_when_rows_are_held(problem):
    G, w, diagonal, k = problem
    M_inv = np.linalg.inv(_dense(G, w, diagonal))
    W = (G[:k] * w[:k, None]).T @ G[:k]
    expected = np.linalg.inv(_dense(G[k:], w[k:], diagonal))
    got = projected_downdate(M_inv, W, diagonal)
    assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_projected_downdate_never_takes_out_more_than_the_data_term():
    prior = np.array([1.0, 2.0])
    M_inv = np.linalg.inv(np.diag(prior) + np.diag([3.0, 0.5]))
    W = np.diag([1.0, 4.0])  # more than the 0.5 the second coordinate holds
    got = projected_downdate(M_inv, W, prior)
    assert_allclose(got, np.linalg.inv(np.diag([1.0 + 2.0, 2.0 + 0.0])))


def test_weighted_column_squares_matches_its_definition_and_leaves_rows_alone():
    from sklearn_ssse._linalg import weighted_column_squares

    rng = np.random.default_rng(3)
    dense = rng.standard_normal((7, 5)) * (rng.random((7, 5)) < 0.5)
    weights = rng.random((7, 2))
    expected = np.einsum("ic,ij->cj", weights, dense**2)
    # a CSR with a repeated entry and unsorted indices: the entries add up first
    coo = sp.coo_matrix(dense)
    row = np.append(coo.row, [1, 1])
    order = np.argsort(row, kind="stable")
    duplicated = sp.csr_matrix(
        (
            np.append(coo.data, [0.5, -0.5])[order],
            np.append(coo.col, [0, 0])[order],
            np.searchsorted(row[order], np.arange(8)),
        ),
        shape=(7, 5),
    )
    assert not duplicated.has_canonical_format
    before = [a.copy() for a in (duplicated.data, duplicated.indices)]
    for rows in (dense, sp.csr_matrix(dense), duplicated):
        assert_allclose(weighted_column_squares(rows, weights), expected)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(before, (duplicated.data, duplicated.indices))
    )
