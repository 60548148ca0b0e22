"""The lazily downdated inverse equals its dense definition (issue 13)."""

import copy
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._curvature import BlockDiagonalInverse
from sklearn_ssse._curvature_lowrank import LowRankUpdatedInverse


def _start(bounds, dtype, seed=0):
    rng = np.random.default_rng(seed)
    blocks = []
    for s, e in bounds:
        G = rng.normal(size=(3 * (e - s), e - s))
        blocks.append(G.T @ G + (e - s) * np.eye(e - s))
    M = np.zeros((bounds[-1][1],) * 2)
    for (s, e), B in zip(bounds, blocks):
        M[s:e, s:e] = B
    inverse = BlockDiagonalInverse.from_blocks(
        bounds, [B.astype(dtype) for B in blocks]
    )
    return inverse, M


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bounds", [[(0, 96)], [(0, 80), (80, 150), (150, 170)]])
def test_sequence_of_downdates_equals_the_dense_definition(dtype, bounds):
    inverse, M = _start(bounds, dtype)
    d = M.shape[0]
    rng = np.random.default_rng(1)
    tol = 2e-4 if dtype == np.float32 else 1e-9
    kinds = set()
    history = []
    for k in [1, 2, 1, 3, 5, 1, 4, 2, 1, 6, 1]:  # passes d/8: compactions
        U = rng.normal(size=(d, k)) * 0.4
        g = rng.normal(size=d)
        factors = [U[s:e].astype(dtype) for s, e in bounds]
        new, old_applied, new_applied = inverse.downdated_and_applied(factors, g)
        M_new = M.copy()
        for s, e in bounds:  # each block loses its own part
            M_new[s:e, s:e] -= U[s:e] @ U[s:e].T
        direct = np.linalg.inv(M_new)
        scale = np.abs(direct).max()
        assert new.dtype == old_applied.dtype == new_applied.dtype == dtype
        assert_allclose(new.to_dense(), direct, atol=tol * scale)
        assert_allclose(new.apply(g), direct @ g, atol=tol * scale * np.abs(g).sum())
        assert_allclose(new_applied, direct @ g, atol=tol * scale * np.abs(g).sum())
        assert_allclose(
            old_applied, np.linalg.solve(M, g), atol=tol * scale * np.abs(g).sum()
        )
        history.append((inverse, inverse.to_dense()))
        kinds.add(type(new))
        inverse, M = new, M_new
    assert kinds == {LowRankUpdatedInverse, BlockDiagonalInverse}
    # No earlier object changed (the factor buffers are shared, never rewritten).
    for old, dense in history:
        assert_array_equal(old.to_dense(), dense)


def test_branching_states_do_not_see_each_other():
    inverse, M = _start([(0, 100)], np.float64)
    rng = np.random.default_rng(2)
    U0, U1, U2 = (rng.normal(size=(100, 1)) * 0.3 for _ in range(3))
    base = inverse.downdated(factors=[U0])
    first = base.downdated(factors=[U1])  # extends the shared buffer in place
    second = base.downdated(factors=[U2])  # must copy base's columns instead
    assert_allclose(base.to_dense(), np.linalg.inv(M - U0 @ U0.T), rtol=1e-9)
    assert_allclose(
        first.to_dense(), np.linalg.inv(M - U0 @ U0.T - U1 @ U1.T), rtol=1e-9
    )
    assert_allclose(
        second.to_dense(), np.linalg.inv(M - U0 @ U0.T - U2 @ U2.T), rtol=1e-9
    )


def test_indefinite_downdate_raises_and_leaves_the_object_unchanged():
    inverse, M = _start([(0, 100)], np.float64)
    rng = np.random.default_rng(3)
    lazy = inverse.downdated(factors=[rng.normal(size=(100, 2)) * 0.3])
    before = lazy.to_dense()
    rank = lazy.rank
    # Removing more than M holds along e_0.
    too_much = np.zeros((100, 1))
    too_much[0, 0] = 10 * np.sqrt(M[0, 0])
    with pytest.raises(np.linalg.LinAlgError):
        lazy.downdated_and_applied([too_much], np.ones(100))
    assert lazy.rank == rank
    assert_array_equal(lazy.to_dense(), before)
    # and the next valid downdate is still right
    U = rng.normal(size=(100, 1)) * 0.3
    assert_allclose(
        lazy.downdated(factors=[U]).to_dense(),
        np.linalg.inv(np.linalg.inv(before) - U @ U.T),
        rtol=1e-8,
    )


def test_pickle_and_copies_hold_the_compacted_form():
    inverse, M = _start([(0, 100)], np.float32)
    U = np.random.default_rng(4).normal(size=(100, 3)).astype(np.float32) * 0.3
    lazy = inverse.downdated(factors=[U])
    assert isinstance(lazy, LowRankUpdatedInverse)
    for restored in (pickle.loads(pickle.dumps(lazy)), copy.deepcopy(lazy)):
        assert type(restored) is BlockDiagonalInverse
        assert restored.dtype == np.float32
        assert_allclose(restored.to_dense(), lazy.to_dense(), rtol=1e-6)
    # One dense block in the pickle, not the base and the factors besides.
    assert len(pickle.dumps(lazy)) < 1.1 * 100 * 100 * 4


def test_grams_and_prior_paths_compact_first():
    inverse, M = _start([(0, 100)], np.float64)
    rng = np.random.default_rng(5)
    U = rng.normal(size=(100, 2)) * 0.3
    lazy = inverse.downdated(factors=[U])
    Z = rng.normal(size=(100, 100)) * 0.05
    W = Z @ Z.T
    new = lazy.downdated(grams=[W])
    assert_allclose(new.to_dense(), np.linalg.inv(M - U @ U.T - W), rtol=1e-8)
    assert lazy.prefers_factors(3)


def test_nbytes_counts_the_factors_and_the_eager_switch(monkeypatch):
    inverse, _ = _start([(0, 128)], np.float64)
    U = np.random.default_rng(6).normal(size=(128, 4)) * 0.3
    lazy = inverse.downdated(factors=[U])
    assert lazy.nbytes == inverse.nbytes + 128 * 4 * 8
    monkeypatch.setattr(BlockDiagonalInverse, "lazy_downdates", False)
    assert type(inverse.downdated(factors=[U])) is BlockDiagonalInverse


def test_model_requests_match_eager_requests(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 79))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    lazy = ErasableLogisticRegression().fit(X, y)
    eager = copy.deepcopy(lazy)
    for start in range(0, 30, 3):
        lazy.partial_forget(X[start : start + 3], y[start : start + 3])
    assert isinstance(lazy.erasure_state_.curvature, LowRankUpdatedInverse)
    with monkeypatch.context() as m:
        m.setattr(BlockDiagonalInverse, "lazy_downdates", False)
        for start in range(0, 30, 3):
            eager.partial_forget(X[start : start + 3], y[start : start + 3])
    assert_allclose(lazy.coef_, eager.coef_, rtol=1e-9, atol=1e-12)
    assert_allclose(
        lazy.curvature_inverse_.to_dense(),
        eager.curvature_inverse_.to_dense(),
        rtol=1e-9,
        atol=1e-12,
    )
    lazy_cert = lazy.erasure_state_.records[-1].certificate
    eager_cert = eager.erasure_state_.records[-1].certificate
    assert lazy_cert["cumulative_gradient_bound"] == pytest.approx(
        eager_cert["cumulative_gradient_bound"], rel=1e-6
    )
    # The pickled model holds no factors (and its fit point sealed: the key).
    lazy.set_erasure_key(b"k" * 32)
    restored = pickle.loads(pickle.dumps(lazy)).set_erasure_key(b"k" * 32)
    assert type(restored.erasure_state_.curvature) is BlockDiagonalInverse
    restored.partial_forget(X[40:41], y[40:41])
    lazy.partial_forget(X[40:41], y[40:41])
    assert_allclose(restored.coef_, lazy.coef_, rtol=1e-9, atol=1e-12)


def test_skops_round_trip_of_a_lazy_state():
    sio = pytest.importorskip("skops.io")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 90))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    model = ErasableLogisticRegression().fit(X, y)
    model.partial_forget(X[:3], y[:3])
    assert isinstance(model.erasure_state_.curvature, LowRankUpdatedInverse)
    model.set_erasure_key(b"k" * 32)  # the fit point is saved sealed
    data = sio.dumps(model)
    loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    loaded.set_erasure_key(b"k" * 32)
    assert loaded.erasure_state_.curvature.rank == [0]  # compacted
    for m in (model, loaded):
        m.partial_forget(X[3:5], y[3:5])
    assert_allclose(loaded.coef_, model.coef_, rtol=1e-9, atol=1e-12)


def test_compact_erasure_state_folds_the_factors_and_changes_nothing_else():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 79))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    model = ErasableLogisticRegression().fit(X, y)
    model.partial_forget(X[:2], y[:2])
    lazy = model.erasure_state_
    assert isinstance(lazy.curvature, LowRankUpdatedInverse)
    assert model.compact_erasure_state() is model
    state = model.erasure_state_
    assert type(state.curvature) is BlockDiagonalInverse
    assert_allclose(state.curvature.to_dense(), lazy.curvature.to_dense(), rtol=1e-12)
    assert state.records == lazy.records and state.coefficients is lazy.coefficients
    # Idempotent, and later requests match a model that was never compacted.
    assert model.compact_erasure_state().erasure_state_ is state
    other = copy.deepcopy(model)
    model.partial_forget(X[5:8], y[5:8])
    other.erasure_state_ = other.erasure_state_.replace(curvature=lazy.curvature)
    other.partial_forget(X[5:8], y[5:8])
    assert_allclose(model.coef_, other.coef_, rtol=1e-9, atol=1e-12)


def test_compact_erasure_state_needs_a_fitted_model():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ErasableLogisticRegression().compact_erasure_state()


# -- a binary request's gradient in the span of its rows ---------------------------
def test_row_span_recovers_scale_and_coefficients():
    from sklearn_ssse._linalg import row_span

    rng = np.random.default_rng(0)
    B = rng.standard_normal((3, 40))
    s = np.array([0.5, 0.0, 2.0])  # a zero scale (p = 0 or 1) is fine
    a = rng.standard_normal(3)
    found = row_span(B, s[:, None] * B, B.T @ a)
    assert found is not None
    np.testing.assert_allclose(found[0], s)
    np.testing.assert_allclose(found[1], a)
    assert np.linalg.norm(found[2]) < 1e-12
    # Outside the span, or U not a scaling of B: None.
    assert row_span(B, s[:, None] * B, rng.standard_normal(40)) is None
    assert row_span(B, rng.standard_normal((3, 40)), B.T @ a) is None
    assert row_span(np.zeros((1, 40)), np.zeros((1, 40)), np.zeros(40)) is None


@pytest.mark.parametrize("leave_out", [True, False])
def test_span_path_equals_the_plain_path(binary_data, leave_out, monkeypatch):
    """The step, the published inverse and the certificate are the same whether
    the one pass takes ``[U, g]`` or the rows alone."""
    from sklearn_ssse import _linalg, base

    X, y = binary_data
    used = []

    def counted(*args, **kwargs):
        found = _linalg.row_span(*args, **kwargs)
        used.append(found is not None)
        return found

    monkeypatch.setattr(base, "row_span", counted)
    results = []
    for limit in (0, _linalg.SPAN_MAX_ROWS):
        monkeypatch.setattr(base, "SPAN_MAX_ROWS", limit)
        model = ErasableLogisticRegression(leave_out=leave_out).fit(X, y)
        for i in range(6):  # the first carries the fit's residual: no span
            model.partial_forget(X[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2])
        results.append(model)
    plain, spanned = results
    assert used == [False] + [True] * 5  # all but the first request
    np.testing.assert_allclose(spanned.coef_, plain.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        spanned.erasure_state_.curvature.to_dense(),
        plain.erasure_state_.curvature.to_dense(),
        rtol=1e-9,
        atol=1e-12,
    )
    for a, b in zip(spanned.request_records_, plain.request_records_):
        assert a.certificate["cumulative_gradient_bound"] == pytest.approx(
            b.certificate["cumulative_gradient_bound"], rel=1e-6
        )
