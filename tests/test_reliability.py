"""Reliability of requests on every erasable estimator (issue 9).

- concurrent requests are serialised: none is lost;
- a reader never sees a torn model (new ``coef_`` with old ``intercept_``);
- every bad request raises an :class:`ErasureError` and leaves the model unchanged;
- repeated and duplicated rows are refused (exactly with a ledger);
- the pickle records the library version; other versions warn, other state formats
  are refused; secure loading with skops works.
"""

import copy
import pickle
import sys
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from sklearn.datasets import make_classification

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasableMLPClassifier,
    ErasableMultiOutputClassifier,
    ErasureError,
    ErasureLedger,
    ErasureNumericalError,
    IncompatibleStateError,
    InvalidRequestError,
)
from sklearn_ssse._state import STATE_FORMAT_VERSION
from sklearn_ssse.exceptions import InconsistentStateVersionWarning


# -- the estimators under test, each with small data --
def _data(n_classes=2, n_samples=120, n_features=6, seed=0, dtype=np.float64):
    X, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=4,
        n_redundant=0,
        n_classes=n_classes,
        n_clusters_per_class=1,
        random_state=seed,
    )
    return X.astype(dtype), y


def _binary():
    X, y = _data()
    return ErasableLogisticRegression().fit(X, y), X, y


def _multinomial():
    X, y = _data(n_classes=3)
    return ErasableLogisticRegression().fit(X, y), X, y


def _fisher():
    X, y = _data(n_classes=3)
    model = ErasableLogisticRegression(curvature="fisher", forget_scale=0.5)
    return model.fit(X, y), X, y


def _multioutput():
    X, y = _data(n_classes=2)
    Y = np.column_stack([y, (X[:, 0] > 0).astype(int), (X[:, 1] > 0).astype(int)])
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression())
    return model.fit(X, Y), X, Y


def _mlp():
    X, y = _data(n_classes=3)
    model = ErasableMLPClassifier(
        hidden_layer_sizes=(6,), max_iter=300, random_state=0, forget_scale=0.1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y), X, y


FACTORIES = {
    "binary": _binary,
    "multinomial": _multinomial,
    "fisher": _fisher,
    "multioutput": _multioutput,
    "mlp": _mlp,
}
_CACHE = {}


def fitted(name):
    """A fresh copy of a fitted model (fitted once per session)."""
    if name not in _CACHE:
        _CACHE[name] = FACTORIES[name]()
    model, X, y = _CACHE[name]
    return copy.deepcopy(model), X, y


def _params(model):
    if hasattr(model, "estimators_"):
        return np.concatenate([_params(est) for est in model.estimators_])
    return model._get_flat_params()


def _frozen(model):
    """Everything about a model, to check that a refused request changed nothing."""
    return pickle.dumps(pickle.loads(pickle.dumps(model)))


@pytest.fixture
def fast_switching():
    """Switch threads as often as possible, so that races show up."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


# -- concurrency --
@pytest.mark.parametrize("name", list(FACTORIES))
def test_concurrent_requests_are_serialised(name, fast_switching):
    """300 runs of two threads forgetting disjoint rows: no request is ever lost."""
    template, X, y = fitted(name)
    first, second = np.arange(0, 3), np.arange(10, 13)
    expected = []
    for order in ((first, second), (second, first)):
        model = copy.deepcopy(template)
        for rows in order:
            model.partial_forget(X[rows], y[rows])
        expected.append(_params(model))
    lost = 0
    for _ in range(300):
        model = copy.deepcopy(template)
        barrier = threading.Barrier(2)

        def forget(rows, model=model, barrier=barrier):
            barrier.wait()
            model.partial_forget(X[rows], y[rows])

        threads = [threading.Thread(target=forget, args=(r,)) for r in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        params = _params(model)
        if not any(np.array_equal(params, e) for e in expected):
            lost += 1
        assert model.n_forgotten_ == 6
    assert lost == 0


def _proba(model, X):
    proba = model.predict_proba(X)
    return np.hstack(proba) if isinstance(proba, list) else proba


@pytest.mark.parametrize("name", list(FACTORIES))
def test_readers_never_see_a_torn_model(name, fast_switching):
    """Every prediction made during requests is that of a published model."""
    model, X, y = fitted(name)
    requests = [np.arange(3 * i, 3 * i + 3) for i in range(8)]
    published = [_proba(model, X)]
    replay = copy.deepcopy(model)
    for rows in requests:
        replay.partial_forget(X[rows], y[rows])
        published.append(_proba(replay, X))

    seen, done = [], threading.Event()

    def read():
        while not done.is_set():
            seen.append(_proba(model, X))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for rows in requests:
            model.partial_forget(X[rows], y[rows])
    finally:
        done.set()
        reader.join()
    seen.append(_proba(model, X))
    torn = [out for out in seen if not any(np.array_equal(out, p) for p in published)]
    assert not torn, f"{len(torn)} of {len(seen)} predictions from a torn model"


def test_snapshot_view_reads_one_instant():
    model, X, y = fitted("multinomial")
    view = model._snapshot()
    model.partial_forget(X[:3], y[:3])
    assert view.erasure_state_ is not model.erasure_state_
    assert view.coef_ is not model.coef_
    assert view.erasure_state_.coefficients is not model.erasure_state_.coefficients


def test_a_request_never_mutates_the_published_state():
    model, X, y = fitted("binary")
    old = model.erasure_state_
    frozen = pickle.dumps(old)
    model.partial_forget(X[:5], y[:5])
    assert pickle.dumps(old) == frozen
    assert model.erasure_state_.version == old.version + 1


# -- the model survives copies --
@pytest.mark.parametrize("name", list(FACTORIES))
def test_pickle_clone_and_deepcopy_after_a_request(name):
    from sklearn.base import clone

    model, X, y = fitted(name)
    model.partial_forget(X[:4], y[:4])
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert_array_equal(_params(other), _params(model))
        other.partial_forget(X[4:6], y[4:6])
    clone(model)


# -- bad requests --
def _bad_requests(X, y):
    X_nan, X_big = X[:3].copy(), X[:3].copy()
    X_nan[0, 0] = np.nan
    X_big[1, 1] = 1e20
    return [
        ("nan", X_nan, y[:3], None, InvalidRequestError),
        ("huge value", X_big, y[:3], None, InvalidRequestError),
        ("duplicate rows", X[[0, 1, 0]], y[[0, 1, 0]], None, InvalidRequestError),
        ("zero weight", X[:3], y[:3], np.array([1.0, 0.0, 1.0]), InvalidRequestError),
        ("negative weight", X[:3], y[:3], -np.ones(3), InvalidRequestError),
        ("features", X[:3, :2], y[:3], None, InvalidRequestError),
        ("every row", X, y, None, InvalidRequestError),
    ]


@pytest.mark.parametrize("name", list(FACTORIES))
def test_bad_requests_raise_and_change_nothing(name):
    model, X, y = fitted(name)
    frozen = _frozen(model)
    for case, X_bad, y_bad, weight, error in _bad_requests(X, y):
        with pytest.raises(error):
            model.partial_forget(X_bad, y_bad, sample_weight=weight)
        assert _frozen(model) == frozen, case
    # and the model still works
    model.partial_forget(X[:2], y[:2])


@pytest.mark.parametrize("scale", [0.0, -1.0, 1e300, np.inf, np.nan])
def test_absurd_forget_scale_is_refused(scale):
    model, X, y = fitted("binary")
    frozen = _frozen(model)
    model.set_params(forget_scale=scale)
    with pytest.raises(ValueError, match="forget_scale"):
        model.partial_forget(X[:2], y[:2])
    model.set_params(forget_scale=1.0)
    assert _frozen(model) == frozen


def test_errors_are_value_errors_of_distinct_kinds():
    assert issubclass(InvalidRequestError, ErasureError)
    assert issubclass(ErasureNumericalError, ErasureError)
    assert issubclass(IncompatibleStateError, ErasureError)
    assert issubclass(ErasureError, ValueError)
    assert not issubclass(InvalidRequestError, ErasureNumericalError)


def test_labels_print_as_the_users_values():
    X, y = _data(n_classes=3)
    labels = np.array(["ant", "bee", "cat"])[y]
    model = ErasableLogisticRegression().fit(X, labels)
    rows = np.flatnonzero(labels == "bee")
    with pytest.raises(InvalidRequestError, match=r"'dog'") as info:
        model.partial_forget(X[:1], ["dog"])
    assert "np.str_" not in str(info.value)
    numeric = ErasableLogisticRegression().fit(X, y)
    too_many = np.flatnonzero(y == 1)
    with pytest.raises(InvalidRequestError, match=r"of class 1 \(") as info:
        numeric.partial_forget(
            np.vstack([X[too_many], X[too_many] + 1e-3]),
            np.concatenate([y[too_many], y[too_many]]),
        )
    assert "np.int64" not in str(info.value)
    model.partial_forget(X[rows[:2]], labels[rows[:2]])


def test_rows_outside_the_training_range_are_refused():
    model, X, y = fitted("binary")
    with pytest.raises(InvalidRequestError, match="larger than any training row"):
        model.partial_forget(X[:1] * 1e3, y[:1])


def test_impossible_curvature_removal_is_a_numerical_refusal():
    """A row no training row resembles takes out curvature that was never put in."""
    X, y = _data()
    X[:, -1] = 0.0  # no training row has this feature
    model = ErasableLogisticRegression().fit(X, y)
    frozen = _frozen(model)
    stranger = X[:1].copy()
    stranger[0, -1] = 0.5  # within the training rows' norms
    with pytest.raises(ErasureNumericalError, match="cannot all be training rows"):
        model.partial_forget(stranger, y[:1])
    assert _frozen(model) == frozen


def test_modified_coefficients_are_refused():
    model, X, y = fitted("binary")
    model.coef_ = model.coef_ * 2
    with pytest.raises(IncompatibleStateError, match="modified"):
        model.partial_forget(X[:2], y[:2])


def test_zero_weight_training_rows_are_not_counted():
    X, y = _data()
    weight = np.ones(len(y))
    weight[:10] = 0
    model = ErasableLogisticRegression().fit(X, y, sample_weight=weight)
    assert model.class_counts_.sum() == len(y) - 10


# -- ledger: exact recognition of rows --
def test_ledger_refuses_unknown_and_repeated_rows():
    model, X, y = fitted("binary")
    ledger = ErasureLedger().record_training(X, y)
    model.partial_forget(X[:3], y[:3], ledger=ledger)
    frozen = _frozen(model)
    with pytest.raises(InvalidRequestError, match="already forgotten"):
        model.partial_forget(X[:3], y[:3], ledger=ledger)
    with pytest.raises(InvalidRequestError, match="never training rows"):
        model.partial_forget(X[5:6], 1 - y[5:6], ledger=ledger)  # wrong label
    with pytest.raises(InvalidRequestError, match="never training rows"):
        model.partial_forget(X[5:6] * 0.5, y[5:6], ledger=ledger)
    assert _frozen(model) == frozen
    assert ledger.n_forgotten == 3


def test_ledger_knows_true_duplicates():
    X, y = _data()
    X = np.vstack([X, X[:1]])
    y = np.concatenate([y, y[:1]])
    model = ErasableLogisticRegression().fit(X, y)
    ledger = ErasureLedger().record_training(X, y)
    # Without a ledger: identical rows up to the training set's largest
    # multiplicity (an aggregate) are accepted, beyond it refused.
    with pytest.raises(InvalidRequestError, match="no row appeared more than 2"):
        model.partial_forget(X[[0, -1, 0]], y[[0, -1, 0]])
    assert model.erasure_state_.max_multiplicity == 2
    copy.deepcopy(model).partial_forget(X[[0, -1]], y[[0, -1]])
    model.partial_forget(X[[0, -1]], y[[0, -1]], ledger=ledger)
    with pytest.raises(InvalidRequestError, match="already forgotten"):
        model.partial_forget(X[:1], y[:1], ledger=ledger)


def test_ledger_matches_dense_and_sparse_rows_and_multioutput():
    import scipy.sparse as sp

    model, X, Y = fitted("multioutput")
    ledger = ErasureLedger().record_training(sp.csr_matrix(X), Y)
    model.partial_forget(X[:2], Y[:2], ledger=ledger)
    with pytest.raises(InvalidRequestError, match="already forgotten"):
        model.partial_forget(X[:2], Y[:2], ledger=ledger)


def test_ledger_key_is_never_pickled():
    X, y = _data()
    key = b"k" * 32
    ledger = ErasureLedger(key).record_training(X, y)
    loaded = pickle.loads(pickle.dumps(ledger))
    assert key not in pickle.dumps(ledger)
    with pytest.raises(InvalidRequestError, match="key is not set"):
        loaded.fingerprints(X[:1], y[:1])
    loaded.set_key(key)
    loaded.check(loaded.fingerprints(X[:1], y[:1]))
    with pytest.raises(InvalidRequestError):  # another key knows no row
        loaded.set_key(b"x" * 32).check(loaded.fingerprints(X[:1], y[:1]))


# -- fuzzing --
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(["binary", "multinomial", "multioutput", "mlp"]),
    n_rows=st.integers(0, 12),
    dtype=st.sampled_from([np.float64, np.float32]),
    scale=st.sampled_from([1.0, 1.0, 1e3, 1e20, -1.0]),
    weight=st.sampled_from([None, 1.0, 2.5, 0.0, -1.0]),
    duplicate=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzzed_requests_either_apply_or_change_nothing(
    name, n_rows, dtype, scale, weight, duplicate, seed
):
    model, X, y = fitted(name)
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(X), size=n_rows, replace=False)
    if duplicate and n_rows:
        rows = np.append(rows, rows[0])
    X_req = (X[rows] * scale).astype(dtype)
    weights = None if weight is None else np.full(len(rows), weight)
    frozen = _frozen(model)
    try:
        model.partial_forget(X_req, y[rows], sample_weight=weights)
    except ErasureError:
        assert _frozen(model) == frozen
        return
    assert np.all(np.isfinite(_params(model)))
    assert model.n_forgotten_ == len(rows)


# -- versions and persistence --
def test_pickle_records_the_library_version():
    import sklearn_ssse

    model, X, y = fitted("binary")
    state = model.__getstate__()
    assert state["_sklearn_ssse_version"] == sklearn_ssse.__version__
    assert model.erasure_state_.format_version == STATE_FORMAT_VERSION
    assert model.erasure_state_.library_version == sklearn_ssse.__version__


def test_another_version_warns_and_another_format_is_refused():
    model, X, y = fitted("binary")
    state = model.__getstate__()
    state["_sklearn_ssse_version"] = "0.0.1"
    other = object.__new__(type(model))
    with pytest.warns(InconsistentStateVersionWarning, match="0.0.1"):
        other.__setstate__(state)
    assert_array_equal(other.predict(X), model.predict(X))
    other.erasure_state_ = other.erasure_state_.replace(format_version=1)
    with pytest.raises(IncompatibleStateError, match="format 1"):
        other.partial_forget(X[:2], y[:2])


def test_a_pickle_of_the_first_version_is_refused_clearly():
    model, X, y = fitted("binary")
    state = model.__getstate__()
    old = state.pop("erasure_state_")
    state["curvature_inverse_"] = old.curvature  # the 0.1 layout: loose attributes
    state["_sklearn_ssse_version"] = "0.1.0"
    legacy = object.__new__(type(model))
    with pytest.warns(InconsistentStateVersionWarning):
        legacy.__setstate__(state)
    assert_array_equal(legacy.predict(X), model.predict(X))
    with pytest.raises(IncompatibleStateError, match="0.1"):
        legacy.partial_forget(X[:2], y[:2])


@pytest.mark.parametrize("name", ["binary", "multioutput", "mlp"])
def test_skops_round_trip(name):
    sio = pytest.importorskip("skops.io")
    model, X, y = fitted(name)
    model.partial_forget(X[:3], y[:3])
    key = b"s" * 32  # the fit point is saved sealed: the key opens it again
    model.set_erasure_key(key)
    data = sio.dumps(model)
    untrusted = sio.get_untrusted_types(data=data)
    assert all(t.startswith(("sklearn_ssse.", "sklearn.")) for t in untrusted)
    loaded = sio.loads(data, trusted=untrusted).set_erasure_key(key)
    assert_array_equal(_params(loaded), _params(model))
    for m in (model, loaded):
        m.partial_forget(X[3:5], y[3:5])
    assert_array_equal(_params(loaded), _params(model))
