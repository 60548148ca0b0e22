"""L1 and elastic-net erasure: the Newton step on the active set (docs/l1.md)."""

import copy
import warnings

import numpy as np
import pytest
from _data import flat_params as _params
from _data import scaled as _scaled
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, softmax
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sklearn_ssse import ErasableLogisticRegression

TIGHT = dict(tol=1e-10, max_iter=5_000)


@pytest.fixture(scope="module")
def binary_data():  # fewer rows than the shared fixture: L1 fits are slower
    return _scaled(load_breast_cancer, 150)


def _reference_step(model, X, y, rows, leave_out=True):
    """The active-set Newton step of docs/l1.md, by dense formulas (Hessian)."""
    classes = model.classes_
    y_idx = np.searchsorted(classes, y)
    liblinear = model.solver == "liblinear"
    scaling = model.intercept_scaling if liblinear else 1.0
    Xt = np.hstack([X, np.full((len(X), 1), scaling)])
    theta = np.hstack([model.coef_, model.intercept_[:, None] / scaling])
    n_out, width = theta.shape
    if n_out == 1:
        p = expit(Xt @ theta[0])
        G = (p - y_idx)[:, None] * Xt
        H = np.einsum("i,ij,ik->ijk", p * (1 - p), Xt, Xt)
    else:
        P = softmax(Xt @ theta.T, axis=1)
        G = np.einsum("ia,ij->iaj", P - np.eye(n_out)[y_idx], Xt).reshape(len(y), -1)
        A = np.einsum("ia,ab->iab", P, np.eye(n_out)) - np.einsum("ia,ib->iab", P, P)
        H = np.einsum("iab,ij,ik->iajbk", A, Xt, Xt).reshape(len(y), G.shape[1], -1)
    penalized = np.ones((n_out, width), dtype=bool)
    if not liblinear:
        penalized[:, -1] = False
    penalized = penalized.ravel()
    theta = theta.ravel()
    ratio = model.l1_ratio
    C = model.C
    # The fitted gradient, with the L1 subgradient sign(θ) on the active set.
    residual = C * G.sum(0) + (1 - ratio) * penalized * theta
    residual += ratio * penalized * np.sign(theta)
    gradient = residual - C * G[rows].sum(0)
    active = ~(penalized & (theta == 0))
    keep = np.ones(len(y), dtype=bool)
    if leave_out:
        keep[rows] = False
    data = C * H.sum(0)
    M = C * H[keep].sum(0) + np.diag((1 - ratio) * penalized)
    floor = np.sqrt(np.finfo(float).eps) * np.mean(np.diag(data)[active])
    M_AA = M[np.ix_(active, active)] + floor * np.eye(active.sum())
    if n_out > 2:  # the softmax's flat intercept direction (all intercepts active)
        v = np.zeros((n_out, width))
        v[:, -1] = 1 / np.sqrt(n_out)
        v = v.ravel()[active]
        M_AA += np.mean(np.diag(data)[active]) * np.outer(v, v)
    step = np.zeros_like(theta)
    step[active] = -np.linalg.solve(M_AA, gradient[active])
    return step, active


FIT_CASES = [
    dict(solver="liblinear", l1_ratio=1.0, C=0.3),
    dict(solver="saga", l1_ratio=1.0, C=0.3),
    dict(solver="saga", l1_ratio=0.5, C=0.3),
]


@pytest.mark.parametrize("params", FIT_CASES)
def test_fit_is_logistic_regression_bit_for_bit(binary_data, params):
    X, y = binary_data
    ours = ErasableLogisticRegression(random_state=0, **params).fit(X, y)
    theirs = LogisticRegression(random_state=0, **params).fit(X, y)
    assert_array_equal(ours.coef_, theirs.coef_)
    assert_array_equal(ours.intercept_, theirs.intercept_)


@pytest.mark.parametrize("params", FIT_CASES)
@pytest.mark.parametrize("leave_out", [True, False])
def test_update_equals_active_set_definition(binary_data, params, leave_out):
    X, y = binary_data
    model = ErasableLogisticRegression(
        curvature="hessian", leave_out=leave_out, random_state=0, **params, **TIGHT
    ).fit(X, y)
    rows = np.arange(4)
    expected, active = _reference_step(model, X, y, rows, leave_out)
    assert 0 < active.sum() < active.size  # some coordinates are frozen
    before = _params(model)
    model.partial_forget(X[rows], y[rows])
    scaling = model.intercept_scaling if model.solver == "liblinear" else 1.0
    step = _params(model) - before
    step[-1] /= scaling
    assert_allclose(step, expected, rtol=1e-6, atol=1e-10)
    assert model.curvature_inverse_.n_params == active.sum()


def test_multinomial_update_equals_active_set_definition(multiclass_data):
    X, y = multiclass_data
    model = ErasableLogisticRegression(
        solver="saga", l1_ratio=1.0, C=0.2, curvature="hessian", **TIGHT
    ).fit(X, y)
    rows = np.array([0, 70, 140])
    expected, active = _reference_step(model, X, y, rows)
    assert 0 < active.sum() < active.size
    before = _params(model)
    model.partial_forget(X[rows], y[rows])
    assert_allclose(_params(model) - before, expected, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("params", FIT_CASES)
def test_frozen_coordinates_stay_at_zero(binary_data, params):
    X, y = binary_data
    model = ErasableLogisticRegression(random_state=0, **params).fit(X, y)
    zero = model.coef_ == 0
    assert zero.any()
    model.partial_forget(X[:5], y[:5]).partial_forget(X[5:9], y[5:9])
    assert_array_equal(model.coef_[zero], 0)


@pytest.mark.parametrize(
    "loader, params, tolerance",
    [
        (load_breast_cancer, dict(solver="liblinear", l1_ratio=1.0, C=0.5), 0.01),
        # saga stops short of the optimum (refit included): a looser bound.
        (load_breast_cancer, dict(solver="saga", l1_ratio=0.5, C=0.5), 0.2),
        (load_wine, dict(solver="saga", l1_ratio=1.0, C=0.5), 0.2),
    ],
)
def test_hessian_update_is_close_to_refit(loader, params, tolerance):
    X, y = _scaled(loader)
    # A request after which the refit keeps the same support (the step's premise;
    # docs/l1.md and benchmarks/results/l1.md for requests that change it).
    rows = np.random.default_rng(3).choice(len(y), 4, replace=False)
    keep = np.setdiff1d(np.arange(len(y)), rows)
    model = ErasableLogisticRegression(curvature="hessian", **params, **TIGHT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
        refit = clone(model).fit(X[keep], y[keep])
    assert_array_equal(model.coef_ != 0, refit.coef_ != 0)
    before = _params(model)
    model.partial_forget(X[rows], y[rows])
    distance = np.linalg.norm(_params(model) - _params(refit))
    assert distance / np.linalg.norm(before - _params(refit)) < tolerance


def test_empty_active_set_moves_nothing(binary_data):
    """liblinear's L1 penalises the intercept too: with a tiny C nothing moves."""
    X, y = binary_data
    model = ErasableLogisticRegression(solver="liblinear", l1_ratio=1.0, C=1e-4)
    model.fit(X, y)
    assert not np.any(model.coef_) and not np.any(model.intercept_)
    assert model.curvature_inverse_.n_params == 0
    model.partial_forget(X[:3], y[:3])
    assert not np.any(model.coef_) and not np.any(model.intercept_)
    assert model.n_forgotten_ == 3


def test_only_the_intercept_moves_when_every_coefficient_is_zero(binary_data):
    X, y = binary_data
    model = ErasableLogisticRegression(
        solver="saga", l1_ratio=1.0, C=1e-4, curvature="hessian", **TIGHT
    ).fit(X, y)
    assert not np.any(model.coef_)
    positives = np.flatnonzero(y == 1)[:10]
    before = model.intercept_.copy()
    model.partial_forget(X[positives], y[positives])
    assert not np.any(model.coef_)
    assert model.intercept_[0] < before[0]  # fewer positives: a lower intercept


@pytest.mark.parametrize("block_size", ["class", 3])
def test_blocks_on_the_active_set(multiclass_data, block_size):
    X, y = multiclass_data
    params = dict(solver="saga", l1_ratio=1.0, C=0.2, curvature="hessian", **TIGHT)
    whole = ErasableLogisticRegression(**params).fit(X, y)
    blocked = ErasableLogisticRegression(block_size=block_size, **params).fit(X, y)
    n_active = whole.curvature_inverse_.n_params
    assert blocked.curvature_inverse_.n_params == n_active
    assert max(e - s for s, e in blocked.curvature_inverse_.bounds) < n_active
    blocked.partial_forget(X[:3], y[:3])
    assert np.all(np.isfinite(blocked.coef_))


def test_fisher_and_mini_batch_fisher_on_the_active_set(binary_data):
    X, y = binary_data
    for extra in ({}, {"fisher_batch_size": 4, "random_state": 0}):
        model = ErasableLogisticRegression(
            solver="saga", l1_ratio=1.0, C=0.3, curvature="fisher", **extra
        ).fit(X, y)
        zero = model.coef_ == 0
        model.partial_forget(X[:3], y[:3])
        assert_array_equal(model.coef_[zero], 0)
        assert np.all(np.isfinite(model.coef_))


@pytest.mark.parametrize(
    "penalty, ratio", [("l1", None), ("elasticnet", 0.5), ("l2", None)]
)
def test_deprecated_penalty_parameter(binary_data, penalty, ratio):
    X, y = binary_data
    params = dict(penalty=penalty, solver="saga", C=0.3, curvature="hessian", **TIGHT)
    if ratio is not None:
        params["l1_ratio"] = ratio
    elif penalty == "l1":
        params["l1_ratio"] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = ErasableLogisticRegression(**params).fit(X, y)
        expected, _ = _reference_step(
            copy.copy(model).set_params(l1_ratio=params.get("l1_ratio", 0.0)),
            X,
            y,
            np.arange(3),
        )
        before = _params(model)
        model.partial_forget(X[:3], y[:3])
    assert_allclose(_params(model) - before, expected, rtol=1e-6, atol=1e-10)


def test_solver_without_l1_keeps_scikit_learn_message(binary_data):
    X, y = binary_data
    with pytest.raises(ValueError, match="Solver lbfgs supports only 'l2' or None"):
        ErasableLogisticRegression(l1_ratio=1.0).fit(X, y)


def test_baselines_move_the_active_set_only(binary_data):
    from sklearn_ssse.baselines import gradient_ascent_update, scrubbing_update

    X, y = binary_data
    params = dict(solver="liblinear", l1_ratio=1.0, C=0.3)
    model = ErasableLogisticRegression(**params).fit(X, y)
    diagonal = ErasableLogisticRegression(block_size=1, curvature="fisher", **params)
    diagonal.fit(X, y)
    zero = model.coef_ == 0
    for updated in (
        gradient_ascent_update(model, X[:3], y[:3], learning_rate=0.1),
        scrubbing_update(diagonal, X[:3], y[:3], noise_scale=0.1, random_state=0),
    ):
        assert_array_equal(updated.coef_[zero], 0)
        assert np.any(updated.coef_[~zero] != model.coef_[~zero])


def test_pure_l1_with_few_remaining_rows_is_not_taken_for_unpenalised():
    X, y = _scaled(load_breast_cancer, 40)
    model = ErasableLogisticRegression(solver="liblinear", l1_ratio=1.0, C=0.5)
    model.fit(X, y)
    model.partial_forget(X[:12], y[:12])  # 28 rows left, 31 parameters
    assert model.n_forgotten_ == 12


@pytest.mark.parametrize(
    "kind, batch_size", [("hessian", 1), ("fisher", 1), ("fisher", 3)]
)
def test_active_set_curvature_is_the_restricted_curvature(
    multiclass_data, kind, batch_size
):
    from sklearn_ssse._active_set import ActiveSetMaths
    from sklearn_ssse._logistic_maths import LogisticMaths

    X, y = multiclass_data
    y = np.searchsorted(np.unique(y), y)
    maths = LogisticMaths(X.shape[1], 3, fit_intercept=True)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=maths.n_params) * (rng.random(maths.n_params) < 0.5)
    index = np.flatnonzero(theta != 0)
    weights, active = rng.random(len(y)), np.ones(3, dtype=bool)
    (full,) = maths.curvature_blocks(
        X, y, weights, theta, active, kind, [(0, maths.n_params)], batch_size, 0
    )
    restricted = ActiveSetMaths(maths, index)
    bounds = [(0, 5), (5, len(index))]
    blocks = restricted.curvature_blocks(
        X, y, weights, theta, active, kind, bounds, batch_size, 0
    )
    for block, (s, e) in zip(blocks, bounds):
        assert_allclose(block, full[np.ix_(index[s:e], index[s:e])], rtol=1e-10)
