"""Opt-in certified removal: objective perturbation at fit (Guo et al. 2020)."""

import json
import pickle
import warnings

import numpy as np
import pytest
from _data import flat_params
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._perturbation import (
    draw_perturbation,
    gradient_budget,
    perturbed_objective,
)
from sklearn_ssse.certificate import erasure_audit, verify_erasure
from sklearn_ssse.exceptions import RefitRecommendedError, RefitRecommendedWarning


def _perturbed_gradient(model, X, y, sample_weight=None, seed=0):
    """``∇(C Σ w ℓ + ½‖coef‖² + bᵀθ)`` at the model, ``b`` redrawn from the seed."""
    maths = model._erasure_maths()
    b = draw_perturbation(maths, model.removal_noise, seed)
    C, strength, penalized = model._objective_scaling()
    yi = np.searchsorted(model.classes_, y)
    weights = np.ones(len(y)) if sample_weight is None else sample_weight
    class_weight = model.erasure_state_.fit_class_weight
    _, gradient = perturbed_objective(
        maths,
        X,
        yi,
        weights * class_weight[yi],
        model._get_flat_params(),
        C,
        strength * penalized,
        b,
    )
    return gradient, b


@pytest.mark.parametrize("data", ["binary_data", "multiclass_data"])
def test_default_fit_is_bit_for_bit_logistic_regression(data, request):
    X, y = request.getfixturevalue(data)
    ours = ErasableLogisticRegression(max_iter=500).fit(X, y)
    theirs = LogisticRegression(max_iter=500).fit(X, y)
    np.testing.assert_array_equal(ours.coef_, theirs.coef_)
    np.testing.assert_array_equal(ours.intercept_, theirs.intercept_)
    assert ours.request_records_ == ()
    ours.partial_forget(X[:2], y[:2])
    assert "certified_removal" not in ours.request_records_[-1].certificate


@pytest.mark.parametrize("data", ["binary_data", "multiclass_data"])
@pytest.mark.parametrize("weighted", [False, True])
def test_perturbed_fit_minimises_the_perturbed_objective(data, weighted, request):
    X, y = request.getfixturevalue(data)
    sample_weight = None
    if weighted:
        sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    model = ErasableLogisticRegression(
        removal_noise=2.0, random_state=0, class_weight={k: 1.0 + k for k in set(y)}
    ).fit(X, y, sample_weight=sample_weight)
    gradient, b = _perturbed_gradient(model, X, y, sample_weight)
    assert np.linalg.norm(gradient) < 1e-5
    # The carried residual is exactly that gradient's norm; none is stored.
    state = model.erasure_state_
    assert state.certificate_state.cumulative_bound == pytest.approx(
        np.linalg.norm(gradient), rel=1e-6, abs=1e-12
    )
    np.testing.assert_array_equal(state.residual_gradient, 0)
    # The noise moved the model (it is not LogisticRegression's solution).
    plain = LogisticRegression(class_weight=model.class_weight).fit(
        X, y, sample_weight=sample_weight
    )
    assert np.linalg.norm(flat_params(model) - flat_params(plain)) > 1e-3
    # Multinomial: no noise along the softmax's flat direction.
    if len(model.classes_) > 2:
        assert abs(b.reshape(len(model.classes_), -1)[:, -1].sum()) < 1e-10


def _contains(obj, vector, seen=None):
    """Whether ``vector`` (or its negation) appears in any array reachable from obj."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return False
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        flat = np.asarray(obj, dtype=np.float64).ravel()
        if flat.size < vector.size:
            return False
        for k in range(0, flat.size - vector.size + 1, vector.size):
            part = flat[k : k + vector.size]
            if np.allclose(part, vector, rtol=1e-3) or np.allclose(
                part, -vector, rtol=1e-3
            ):
                return True
        return False
    if isinstance(obj, dict):
        return any(_contains(v, vector, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_contains(v, vector, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return _contains(vars(obj), vector, seen)
    if hasattr(obj, "__dataclass_fields__"):
        return any(
            _contains(getattr(obj, f), vector, seen) for f in obj.__dataclass_fields__
        )
    return False


def test_noise_is_never_stored_nor_pickled(binary_data):
    X, y = binary_data
    model = ErasableLogisticRegression(removal_noise=3.0, random_state=0).fit(X, y)
    _, b = _perturbed_gradient(model, X, y)
    assert not _contains(model.__dict__, b)
    assert not _contains(pickle.loads(pickle.dumps(model)).__dict__, b)
    # The unperturbed gradient at the fit is −b (up to the solver's residual):
    # storing it would reveal b. The state keeps zeros.
    assert not _contains(model.erasure_state_, b)
    model.partial_forget(X[:1], y[:1])
    assert not _contains(model.__dict__, b)
    assert b.tobytes() not in pickle.dumps(model)


def test_records_carry_the_guarantee_and_flip_when_the_budget_is_passed(binary_data):
    X, y = binary_data
    noise = 5.0
    model = ErasableLogisticRegression(removal_noise=noise, random_state=0).fit(X, y)
    budget = gradient_budget(noise, 1.0, 1e-4)
    states = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for r in range(30):
            model.partial_forget(X[5 * r : 5 * r + 5], y[5 * r : 5 * r + 5])
            entry = model.request_records_[-1].certificate["certified_removal"]
            bound = model.request_records_[-1].certificate["cumulative_gradient_bound"]
            assert entry["holds"] == (bound <= budget)
            assert entry["gradient_budget"] == pytest.approx(budget)
            assert (entry["epsilon"], entry["delta"], entry["noise"]) == (
                1.0,
                1e-4,
                noise,
            )
            states.append(entry["holds"])
    assert states[0] and not states[-1]
    # Once broken it stays broken (the bound only grows), with one warning each.
    first_broken = states.index(False)
    assert not any(states[first_broken:])
    refits = [w for w in caught if issubclass(w.category, RefitRecommendedWarning)]
    assert len(refits) >= len(states) - first_broken
    assert "certified removal guarantee no longer holds" in str(refits[0].message)
    # Exported: JSON (no NaN) and flat columns.
    log = erasure_audit(model)
    rows = json.loads(log.to_json())
    assert rows[0]["certificate_certified_removal_holds"] is True
    assert rows[-1]["certificate_certified_removal_holds"] is False
    assert model.request_records_[-1].within_budget is False


def test_raise_refuses_the_request_leaving_the_model_unchanged(binary_data):
    X, y = binary_data
    model = ErasableLogisticRegression(
        removal_noise=1.0, random_state=0, on_budget="raise"
    ).fit(X, y)
    applied = 0
    for r in range(40):
        before = (model.coef_.copy(), model.intercept_.copy(), model.erasure_state_)
        try:
            model.partial_forget(X[5 * r : 5 * r + 5], y[5 * r : 5 * r + 5])
        except RefitRecommendedError as exc:
            assert "no longer holds" in str(exc)
            np.testing.assert_array_equal(model.coef_, before[0])
            np.testing.assert_array_equal(model.intercept_, before[1])
            assert model.erasure_state_ is before[2]
            break
        applied += 1
        entry = model.request_records_[-1].certificate["certified_removal"]
        assert entry["holds"]
    else:
        pytest.fail("the guarantee never broke")
    assert model.n_forgotten_ == 5 * applied


def test_uncovered_requests_do_not_hold(multiclass_data):
    X, y = multiclass_data
    # Balanced class weights: no certificate is kept, so no request is covered.
    model = ErasableLogisticRegression(
        removal_noise=100.0, random_state=0, class_weight="balanced"
    ).fit(X, y)
    with pytest.warns(RefitRecommendedWarning, match="no data-free certificate"):
        model.partial_forget(X[:1], y[:1])
    assert not model.request_records_[-1].certificate["certified_removal"]["holds"]
    # A class emptied: the remaining objective is another one.
    model = ErasableLogisticRegression(
        removal_noise=1e6, random_state=0, on_budget="raise"
    ).fit(X, y)
    cls = np.flatnonzero(y == 2)
    with pytest.raises(RefitRecommendedError, match="class lost all its rows"):
        model.partial_forget(X[cls], y[cls])
    assert model.n_forgotten_ == 0


@pytest.mark.parametrize(
    "params, match",
    [
        ({"l1_ratio": 1.0, "solver": "saga"}, "pure L2"),
        ({"l1_ratio": 0.5, "solver": "saga"}, "pure L2"),
        ({"C": np.inf}, "pure L2"),
        ({"removal_noise": -1.0}, "removal_noise"),
        ({"removal_noise": 0.0}, "removal_noise"),
        ({"removal_epsilon": 0.0}, "removal_epsilon"),
        ({"removal_delta": 1.0}, "removal_delta"),
    ],
)
def test_parameter_validation(binary_data, params, match):
    X, y = binary_data
    params = {"removal_noise": 1.0, **params}
    model = ErasableLogisticRegression(**params)
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)
    assert not hasattr(model, "coef_")


def test_changing_the_noise_after_fit_asks_for_a_fit(binary_data):
    X, y = binary_data
    model = ErasableLogisticRegression(removal_noise=10.0, random_state=0).fit(X, y)
    model.set_params(removal_noise=1e6)
    with pytest.raises(ValueError, match="removal_noise"):
        model.partial_forget(X[:1], y[:1])
    # ε and δ are part of the claim, not of the fit: they may change.
    model.set_params(removal_noise=10.0, removal_epsilon=0.5, removal_delta=1e-6)
    model.partial_forget(X[:1], y[:1])
    entry = model.request_records_[-1].certificate["certified_removal"]
    assert entry["epsilon"] == 0.5
    assert entry["gradient_budget"] == pytest.approx(gradient_budget(10.0, 0.5, 1e-6))


def test_seed_reproduces_the_fit_and_none_draws_fresh_noise(binary_data):
    X, y = binary_data
    a = ErasableLogisticRegression(removal_noise=1.0, random_state=7).fit(X, y)
    b = ErasableLogisticRegression(removal_noise=1.0, random_state=7).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    c = ErasableLogisticRegression(removal_noise=1.0).fit(X, y)
    d = ErasableLogisticRegression(removal_noise=1.0).fit(X, y)
    assert not np.array_equal(c.coef_, d.coef_)


def test_verify_erasure_with_and_without_the_noise(binary_data):
    X, y = binary_data
    model = ErasableLogisticRegression(removal_noise=2.0, random_state=0).fit(X, y)
    model.partial_forget(X[:2], y[:2])
    _, b = _perturbed_gradient(model, X, y)
    with_b = verify_erasure(model, X[2:], y[2:], perturbation=b)
    without = verify_erasure(model, X[2:], y[2:])
    bound = model.request_records_[-1].certificate["cumulative_gradient_bound"]
    # The certificate bounds the perturbed objective's residual ...
    assert with_b.gradient_norm <= bound
    # ... while the unperturbed one is about the noise itself.
    assert without.gradient_norm == pytest.approx(np.linalg.norm(b), rel=0.2)
    with pytest.raises(ValueError, match="perturbation"):
        verify_erasure(model, X[2:], y[2:], perturbation=b[:-1])


@pytest.mark.parametrize("data", ["binary_data", "multiclass_data"])
def test_certificate_bounds_the_perturbed_residual(data, request):
    X, y = request.getfixturevalue(data)
    model = ErasableLogisticRegression(removal_noise=2.0, random_state=0).fit(X, y)
    alive = np.ones(len(y), dtype=bool)
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefitRecommendedWarning)
        for _ in range(5):
            rows = rng.choice(np.flatnonzero(alive), 3, replace=False)
            model.partial_forget(X[rows], y[rows])
            alive[rows] = False
            gradient, _ = _perturbed_gradient(model, X[alive], y[alive])
            bound = model.request_records_[-1].certificate["cumulative_gradient_bound"]
            assert np.linalg.norm(gradient) <= bound


@parametrize_with_checks(
    [ErasableLogisticRegression(removal_noise=1.0, random_state=0)]
)
def test_sklearn_compatible_with_removal_noise(estimator, check):
    check(estimator)


# -- multi-output: one independent b per output ---------------------------------
def _twin_outputs(binary_data):
    X, y = binary_data
    return X, np.column_stack([y, y, y])  # three identical outputs


@pytest.mark.parametrize("seed", [0, "random_state", None])
def test_multioutput_outputs_draw_independent_perturbations(binary_data, seed):
    """Clones share ``random_state``; each output must still get its own ``b``."""
    from sklearn_ssse import ErasableMultiOutputClassifier

    X, Y = _twin_outputs(binary_data)
    if seed == "random_state":
        seed = np.random.RandomState(0)
    base = ErasableLogisticRegression(removal_noise=1.0, random_state=seed)
    model = ErasableMultiOutputClassifier(base).fit(X, Y)
    coefs = [e.coef_.ravel() for e in model.estimators_]
    assert not np.allclose(coefs[0], coefs[1])
    assert not np.allclose(coefs[1], coefs[2])
    seeds = [e.random_state for e in model.estimators_]
    if seed is None:
        return  # fresh entropy for each output: nothing to redraw
    assert len(set(seeds)) == 3
    # Each output minimises its own perturbed objective with the seed it records.
    for estimator, column in zip(model.estimators_, Y.T):
        gradient, _ = _perturbed_gradient(
            estimator, X, column, seed=estimator.random_state
        )
        assert np.linalg.norm(gradient) < 1e-6


def test_multioutput_output_seeds_are_reproducible(binary_data):
    from sklearn_ssse import ErasableMultiOutputClassifier

    X, Y = _twin_outputs(binary_data)
    base = ErasableLogisticRegression(removal_noise=1.0, random_state=3)
    one = ErasableMultiOutputClassifier(base).fit(X, Y)
    two = ErasableMultiOutputClassifier(base, n_jobs=2).fit(X, Y)
    for a, b in zip(one.estimators_, two.estimators_):
        np.testing.assert_array_equal(a.coef_, b.coef_)
    assert base.random_state == 3  # the template is not modified
    Xk, Yk = X[:2], Y[:2]
    one.partial_forget(Xk, Yk)
    for estimator in one.estimators_:
        record = estimator.request_records_[-1]
        assert record.certificate["certified_removal"]["holds"]


def test_multioutput_without_noise_keeps_the_template_seed(binary_data):
    from sklearn_ssse import ErasableMultiOutputClassifier

    X, Y = _twin_outputs(binary_data)
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression(random_state=5))
    model.fit(X, Y)
    assert [e.random_state for e in model.estimators_] == [5, 5, 5]
    np.testing.assert_array_equal(
        model.estimators_[0].coef_, model.estimators_[1].coef_
    )
