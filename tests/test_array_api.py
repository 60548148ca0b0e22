"""The array API: fit, curvature, requests and scores on any namespace and device.

Every array API result is compared with the NumPy result of the same problem. The
namespaces are those scikit-learn tests (``yield_namespace_device_dtype_combinations``):
array-api-strict always (the ``test`` extra installs it), PyTorch and CuPy where
installed (and their GPU devices where present); the others skip.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import config_context
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.utils._array_api import (
    _convert_to_numpy,
    get_namespace_and_device,
    yield_namespace_device_dtype_combinations,
)
from sklearn.utils._testing import _array_api_for_tests
from sklearn.utils.estimator_checks import (
    check_array_api_input,
    check_array_api_input_and_values,
    check_array_api_same_namespace,
)

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.exceptions import IncompatibleStateError, InvalidRequestError
from sklearn_ssse.ledger import ErasureLedger
from sklearn_ssse.metrics import erasure_report, similarity_ratio
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier

COMBINATIONS = list(yield_namespace_device_dtype_combinations(False))
IDS = [f"{ns}-{dev}-{dt}" for ns, dev, dt in COMBINATIONS]
combinations = pytest.mark.parametrize(
    "namespace, device_name, dtype_name", COMBINATIONS, ids=IDS
)


@pytest.fixture(autouse=True)
def _quiet_dtype_comparison():
    # scikit-learn's check_array compares the requested dtypes with NumPy's
    # while validating array-api-strict input; nothing of ours.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="You are comparing a array_api_strict"
        )
        yield


def _namespace(namespace, device_name, dtype_name):
    xp, device = _array_api_for_tests(namespace, device_name, dtype_name)
    return xp, device


def _rtol(dtype_name):
    return 1e-9 if dtype_name == "float64" else 2e-3


def _atol(dtype_name, name=""):
    if dtype_name == "float64":
        return 1e-10
    # In float32 LogisticRegression's array API and NumPy solvers stop at
    # parameters ~1e-5 apart; the residual gradient (a sum that cancels to the
    # solver's tolerance) inherits that difference, relative to its ~1e-2 scale.
    return 2e-4 if name == "residual_gradient" else 1e-5


def _host(array):
    with config_context(array_api_dispatch=True):
        xp, _, _ = get_namespace_and_device(array)
    return _convert_to_numpy(array, xp)


def _data(n_classes, dtype_name, n_samples=120, seed=0):
    X, y = make_classification(
        n_samples=n_samples,
        n_features=6,
        n_informative=4,
        n_redundant=0,
        n_classes=n_classes,
        random_state=seed,
    )
    return X.astype(dtype_name), y


def _assert_on(array, xp, X):
    """``array`` is of ``xp`` and on ``X``'s device."""
    with config_context(array_api_dispatch=True):
        a_xp, _, a_device = get_namespace_and_device(array)
        _, _, x_device = get_namespace_and_device(X)
    assert a_xp.__name__ == xp.__name__
    assert a_device == x_device


def _state_arrays(model):
    state = model.erasure_state_
    arrays = {
        "point": state.point,
        "prior": state.prior,
        "residual_gradient": state.residual_gradient,
        "coefficients": state.coefficients,
        "data_diagonal": state.data_diagonal,
    }
    arrays.update(
        {f"inverse{i}": inv for i, inv in enumerate(state.curvature.inverses)}
    )
    return arrays


def _fit_both(Xn, yn, xp, device, sample_weight=None, **params):
    reference = ErasableLogisticRegression(**params).fit(
        Xn, yn, sample_weight=sample_weight
    )
    X = xp.asarray(Xn, device=device)
    y = xp.asarray(yn, device=device)
    sw = None if sample_weight is None else xp.asarray(sample_weight, device=device)
    with config_context(array_api_dispatch=True):
        model = ErasableLogisticRegression(**params).fit(X, y, sample_weight=sw)
    return reference, model, X, y


@combinations
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fit_is_logistic_regression_bit_for_bit(
    namespace, device_name, dtype_name, n_classes
):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(n_classes, dtype_name)
    X, y = xp.asarray(Xn, device=device), xp.asarray(yn, device=device)
    with config_context(array_api_dispatch=True):
        model = ErasableLogisticRegression().fit(X, y)
        plain = LogisticRegression().fit(X, y)
    assert_array_equal(_host(model.coef_), _host(plain.coef_))
    assert_array_equal(_host(model.intercept_), _host(plain.intercept_))
    _assert_on(model.coef_, xp, X)


@combinations
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize(
    "curvature, block_size",
    [
        ("hessian", None),
        ("fisher", None),
        ("hessian", "class"),
        ("fisher", 4),
        ("hessian", 1),
    ],
)
def test_curvature_matches_numpy(
    namespace, device_name, dtype_name, n_classes, curvature, block_size
):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(n_classes, dtype_name)
    reference, model, X, _ = _fit_both(
        Xn, yn, xp, device, curvature=curvature, block_size=block_size
    )
    for name, array in _state_arrays(model).items():
        _assert_on(array, xp, X)
        expected = _state_arrays(reference)[name]
        assert_allclose(
            _host(array),
            expected,
            rtol=_rtol(dtype_name),
            atol=_atol(dtype_name, name),
            err_msg=name,
        )
    state, ref_state = model.erasure_state_, reference.erasure_state_
    assert_array_equal(state.class_counts, ref_state.class_counts)
    assert state.row_norm_bound == ref_state.row_norm_bound
    assert state.curvature.dtype == xp.asarray(Xn, device=device).dtype


@combinations
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize(
    "curvature, leave_out", [("hessian", True), ("fisher", True), ("hessian", False)]
)
def test_partial_forget_matches_numpy(
    namespace, device_name, dtype_name, n_classes, curvature, leave_out
):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(n_classes, dtype_name)
    weights = np.linspace(0.5, 2.0, len(yn)).astype(dtype_name)
    reference, model, X, y = _fit_both(
        Xn,
        yn,
        xp,
        device,
        sample_weight=weights,
        curvature=curvature,
        leave_out=leave_out,
        forget_scale=0.5 if curvature == "fisher" else 1.0,
    )
    sw = xp.asarray(weights, device=device)
    for rows in (slice(0, 1), slice(1, 11)):  # one row, then ten
        reference.partial_forget(Xn[rows], yn[rows], sample_weight=weights[rows])
        with config_context(array_api_dispatch=True):
            model.partial_forget(X[rows, ...], y[rows], sample_weight=sw[rows])
        rtol = _rtol(dtype_name)
        assert_allclose(_host(model.coef_), reference.coef_, rtol=rtol, atol=1e-6)
        assert_allclose(
            _host(model.intercept_), reference.intercept_, rtol=rtol, atol=1e-6
        )
    for name, array in _state_arrays(model).items():
        _assert_on(array, xp, X)
        expected = _state_arrays(reference)[name]
        assert_allclose(_host(array), expected, rtol=rtol, atol=1e-6, err_msg=name)
    _assert_on(model.coef_, xp, X)
    assert_array_equal(model.class_counts_, reference.class_counts_)
    assert model.n_forgotten_ == 11
    record = model.request_records_[-1]
    assert record.n_rows == 10
    assert record.step_norm == pytest.approx(
        reference.request_records_[-1].step_norm, rel=1e-3
    )
    with config_context(array_api_dispatch=True):
        proba = model.predict_proba(X)
    _assert_on(proba, xp, X)
    assert_allclose(_host(proba), reference.predict_proba(Xn), rtol=rtol, atol=1e-6)


@combinations
def test_minibatch_fisher(namespace, device_name, dtype_name):
    """fisher_batch_size > 1: same batches, and the projected downdate."""
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(2, dtype_name)
    params = dict(curvature="fisher", fisher_batch_size=4, random_state=0)
    reference, model, X, y = _fit_both(Xn, yn, xp, device, block_size=3, **params)
    assert_allclose(
        _host(model.erasure_state_.curvature.to_dense()),
        reference.erasure_state_.curvature.to_dense(),
        rtol=_rtol(dtype_name),
        atol=_atol(dtype_name),
    )
    reference.partial_forget(Xn[:5], yn[:5])
    with config_context(array_api_dispatch=True):
        model.partial_forget(X[:5, ...], y[:5])
    assert_allclose(
        _host(model.coef_), reference.coef_, rtol=_rtol(dtype_name) * 10, atol=1e-5
    )


@combinations
def test_balanced_class_weight(namespace, device_name, dtype_name):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(3, dtype_name)
    reference, model, X, y = _fit_both(Xn, yn, xp, device, class_weight="balanced")
    reference.partial_forget(Xn[:7], yn[:7])
    with config_context(array_api_dispatch=True):
        model.partial_forget(X[:7, ...], y[:7])
    assert_allclose(
        _host(model.coef_), reference.coef_, rtol=_rtol(dtype_name), atol=1e-6
    )
    _assert_on(model.erasure_state_.class_gradient_sums, xp, X)


@combinations
def test_forgotten_class_predictions(namespace, device_name, dtype_name):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(3, dtype_name)
    reference, model, X, y = _fit_both(Xn, yn, xp, device)
    gone = np.flatnonzero(yn == 0)
    reference.partial_forget(Xn[gone], yn[gone])
    with config_context(array_api_dispatch=True):
        index = xp.asarray(gone, device=device)
        model.partial_forget(xp.take(X, index, axis=0), xp.take(y, index, axis=0))
        scores = model.decision_function(X)
        proba = model.predict_proba(X)
        predicted = model.predict(X)
    for result in (scores, proba, predicted):
        _assert_on(result, xp, X)
    assert np.all(_host(scores)[:, 0] == -np.inf)
    assert np.all(_host(proba)[:, 0] == 0)
    assert_array_equal(_host(model.coef_)[0], 0)
    assert_allclose(
        _host(proba), reference.predict_proba(Xn), rtol=_rtol(dtype_name), atol=1e-6
    )
    assert_array_equal(_host(predicted), reference.predict(Xn))


@combinations
def test_binary_model_left_with_one_class(namespace, device_name, dtype_name):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(2, dtype_name)
    _, model, X, y = _fit_both(Xn, yn, xp, device)
    gone = np.flatnonzero(yn == 0)
    with config_context(array_api_dispatch=True):
        index = xp.asarray(gone, device=device)
        model.partial_forget(xp.take(X, index, axis=0), xp.take(y, index, axis=0))
        scores = model.decision_function(X)
    _assert_on(scores, xp, X)
    assert np.all(_host(scores) == np.inf)


@combinations
def test_invalid_requests_leave_the_model_unchanged(namespace, device_name, dtype_name):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(2, dtype_name)
    _, model, X, y = _fit_both(Xn, yn, xp, device)
    state = model.erasure_state_
    coef = model.coef_
    big = xp.asarray(Xn[:1] * 1e6, device=device)
    twice = xp.asarray(np.vstack([Xn[:1], Xn[:1]]), device=device)
    with config_context(array_api_dispatch=True):
        with pytest.raises(InvalidRequestError, match="not seen in fit"):
            model.partial_forget(X[:2, ...], xp.asarray([0, 7], device=device))
        with pytest.raises(InvalidRequestError, match="larger than any"):
            model.partial_forget(big, y[:1])
        with pytest.raises(InvalidRequestError, match="no row appeared more than"):
            model.partial_forget(twice, xp.asarray(yn[[0, 0]], device=device))
        with pytest.raises(InvalidRequestError, match="must be positive"):
            model.partial_forget(
                X[:1, ...], y[:1], sample_weight=xp.asarray([0.0], device=device)
            )
        with pytest.raises(InvalidRequestError, match="every remaining"):
            model.partial_forget(X, y)
        with pytest.raises(InvalidRequestError, match="same namespace"):
            model.partial_forget(Xn[:1], yn[:1])  # NumPy rows, array API state
    with pytest.raises(IncompatibleStateError, match="array_api_dispatch"):
        model.partial_forget(X[:1, ...], y[:1])  # dispatch off
    assert model.erasure_state_ is state
    assert model.coef_ is coef


@combinations
def test_ledger(namespace, device_name, dtype_name):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(2, dtype_name)
    reference, model, X, y = _fit_both(Xn, yn, xp, device)
    with config_context(array_api_dispatch=True):
        ledger = ErasureLedger().record_training(X, y)  # hashed on the host
        model.partial_forget(X[:3, ...], y[:3], ledger=ledger)
        with pytest.raises(InvalidRequestError, match="already forgotten"):
            model.partial_forget(X[:1, ...], y[:1], ledger=ledger)
    assert ledger.n_forgotten == 3


@combinations
def test_multioutput(namespace, device_name, dtype_name):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, _ = _data(2, dtype_name)
    rng = np.random.RandomState(0)
    Yn = (Xn[:, :3] + 0.5 * rng.randn(len(Xn), 3) > 0).astype(np.int64)
    reference = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(Xn, Yn)
    X, Y = xp.asarray(Xn, device=device), xp.asarray(Yn, device=device)
    with config_context(array_api_dispatch=True):
        model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
        ledger = ErasureLedger().record_training(X, Y)
        model.partial_forget(X[:5, ...], Y[:5, ...], ledger=ledger)
        predicted = model.predict(X)
        proba = model.predict_proba(X)
    reference.partial_forget(Xn[:5], Yn[:5])
    _assert_on(predicted, xp, X)
    assert_array_equal(_host(predicted), reference.predict(Xn))
    for est, ref in zip(model.estimators_, reference.estimators_):
        _assert_on(est.erasure_state_.curvature.inverses[0], xp, X)
        assert_allclose(_host(est.coef_), ref.coef_, rtol=_rtol(dtype_name), atol=1e-6)
    # γ from array API scores equals γ from NumPy scores.
    ref_proba = [p[:5] for p in reference.predict_proba(Xn)]
    gamma = similarity_ratio(
        Yn[:5],
        [p[:5, ...] for p in proba],
        y_score_original=ref_proba,
        y_score_refit=[1 - p for p in ref_proba],
    )
    expected = similarity_ratio(
        Yn[:5],
        [p for p in ref_proba],
        y_score_original=ref_proba,
        y_score_refit=[1 - p for p in ref_proba],
    )
    assert gamma == pytest.approx(expected)


@combinations
def test_erasure_report(namespace, device_name, dtype_name):
    xp, device = _namespace(namespace, device_name, dtype_name)
    Xn, yn = _data(3, dtype_name, n_samples=150)
    forget, keep = np.arange(10), np.arange(10, 150)
    X, y = xp.asarray(Xn, device=device), xp.asarray(yn, device=device)
    params = {"max_iter": 500}

    def models(X, y):
        original = ErasableLogisticRegression(**params).fit(X, y)
        updated = ErasableLogisticRegression(**params).fit(X, y)
        updated.partial_forget(X[:10, ...], y[:10])
        refit = ErasableLogisticRegression(**params).fit(X[10:, ...], y[10:])
        return original, updated, refit

    expected = erasure_report(
        *models(Xn, yn),
        Xn[forget],
        yn[forget],
        X_remaining=Xn[keep],
        y_remaining=yn[keep],
        X_test=Xn[keep],
        y_test=yn[keep],
    )
    with config_context(array_api_dispatch=True):
        report = erasure_report(
            *models(X, y),
            X[:10, ...],
            y[:10],
            X_remaining=X[10:, ...],
            y_remaining=y[10:],
            X_test=X[10:, ...],
            y_test=y[10:],
        )
    for name, row in expected.items():
        for key, value in row.items():
            assert report[name][key] == pytest.approx(
                value, rel=_rtol(dtype_name) * 10, abs=1e-5, nan_ok=True
            ), (name, key)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_numpy_inputs_take_the_numpy_path(n_classes):
    """With dispatch on, NumPy inputs give exactly the state of dispatch off."""
    Xn, yn = _data(n_classes, "float64")
    plain = ErasableLogisticRegression().fit(Xn, yn).partial_forget(Xn[:3], yn[:3])
    with config_context(array_api_dispatch=True):
        model = ErasableLogisticRegression().fit(Xn, yn)
        model.partial_forget(Xn[:3], yn[:3])
    assert_array_equal(model.coef_, plain.coef_)
    for name, array in _state_arrays(model).items():
        assert isinstance(array, np.ndarray)
        assert_array_equal(array, _state_arrays(plain)[name], err_msg=name)


def test_tags_follow_logistic_regression():
    from sklearn.utils import get_tags

    assert get_tags(ErasableLogisticRegression()).array_api_support
    assert not get_tags(
        ErasableLogisticRegression(solver="liblinear")
    ).array_api_support


@combinations
def test_scikit_learn_array_api_checks(namespace, device_name, dtype_name):
    """scikit-learn's own estimator checks for the array API."""
    _namespace(namespace, device_name, dtype_name)  # skips what is not there
    estimator = ErasableLogisticRegression()
    name = type(estimator).__name__
    check_array_api_input(name, estimator, namespace, device_name, dtype_name)
    check_array_api_input(
        name, estimator, namespace, device_name, dtype_name, check_sample_weight=True
    )
    if dtype_name == "float64":
        check_array_api_input_and_values(name, estimator, namespace, device_name)
    check_array_api_same_namespace(name, estimator, namespace, device_name)
