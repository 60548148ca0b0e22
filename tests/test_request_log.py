"""The request log of an erasable model (``_state.RequestLog``).

- a request extends it in O(1): successive logs share one list, never copied;
- every state sees exactly its own records, whatever was appended after it (later
  requests, shallow copies of the model, a request that failed before publishing);
- it reads like the tuple it replaced and compares equal to it;
- pickles, copies and skops files hold only its own records; states of older
  pickles, which hold a tuple, still take requests.
"""

import copy
import pickle
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasableMLPClassifier,
    ErasableMultiOutputClassifier,
    InvalidRequestError,
)
from sklearn_ssse._state import RequestLog, append_record


def _data(n_classes=2):
    X, y = make_classification(
        n_samples=100,
        n_features=5,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        n_clusters_per_class=1,
        random_state=0,
    )
    return X, y


@pytest.fixture(scope="module")
def _fitted_binary():
    X, y = _data()
    return ErasableLogisticRegression().fit(X, y), X, y


@pytest.fixture
def binary(_fitted_binary):
    model, X, y = _fitted_binary
    return copy.deepcopy(model), X, y


def _rows(records):
    return [record.n_rows for record in records]


# -- the sequence itself --
def test_reads_like_a_tuple():
    log = RequestLog()
    assert not log and len(log) == 0 and log == () and () == log
    for item in "abcd":
        log = log.appended(item)
    items = ("a", "b", "c", "d")
    assert log and len(log) == 4 and list(log) == list(items)
    assert log[0] == "a" and log[-1] == "d" and log[-4] == "a"
    for index in (4, -5):
        with pytest.raises(IndexError):
            log[index]
    with pytest.raises(TypeError):
        log["a"]
    for key in (slice(1, 3), slice(None, None, -1), slice(None, None, -2), slice(9)):
        assert log[key] == items[key] and isinstance(log[key], tuple)
    assert list(reversed(log)) == list(reversed(items))
    assert "c" in log and "e" not in log
    assert log.index("c") == 2 and log.count("a") == 1
    assert log == items and items == log and log == RequestLog(items)
    assert log != items[:3] and log != items + ("e",) and log != RequestLog(items[:3])
    assert log != list(items)  # as a tuple is not equal to a list
    assert repr(RequestLog()) == "RequestLog([])"


def test_appends_share_one_list_and_older_logs_do_not_change():
    first = RequestLog(["a"])
    second = first.appended("b")
    third = second.appended("c")
    assert second._shared is first._shared and third._shared is first._shared
    assert first == ("a",) and second == ("a", "b") and third == ("a", "b", "c")
    assert list(first) == ["a"] and first[-1] == "a" and first[:] == ("a",)
    with pytest.raises(IndexError):
        first[1]


def test_appending_past_another_log_copies_only_its_own_records():
    base = RequestLog(["a"])
    left = base.appended("left")  # the tip: in place
    right = base.appended("right")  # no longer the tip: a list of its own
    assert left._shared is base._shared and right._shared is not base._shared
    assert left == ("a", "left") and right == ("a", "right") and base == ("a",)
    assert right.appended("next")._shared is right._shared


class _SlowList(list):
    """A list slow to tell its length: widens the window between a log's "am I
    the tip?" check and its append."""

    def __len__(self):
        length = super().__len__()
        time.sleep(1e-3)
        return length


def test_concurrent_appends_at_one_tip_each_keep_their_own():
    base = RequestLog._view(_SlowList(["a"]), 1)
    barrier = threading.Barrier(4)
    out = {}

    def append(name):
        barrier.wait()
        out[name] = base.appended(name)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(out[n] == ("a", n) for n in range(4))
    assert sum(log._shared is base._shared for log in out.values()) == 1


def test_a_tuple_is_accepted_and_converted():
    log = append_record(("a", "b"), "c")
    assert isinstance(log, RequestLog) and log == ("a", "b", "c")


@pytest.mark.parametrize(
    "round_trip",
    [
        lambda log: pickle.loads(pickle.dumps(log)),
        lambda log: pickle.loads(pickle.dumps(log, protocol=0)),
        copy.deepcopy,
    ],
)
def test_pickles_and_deep_copies_hold_only_the_prefix(round_trip):
    first = RequestLog(["a"])
    first.appended("b").appended("c")
    loaded = round_trip(first)
    assert loaded == ("a",) and loaded._shared == ["a"]
    assert loaded._shared is not first._shared
    assert loaded.appended("d") == ("a", "d") and first == ("a",)
    assert copy.copy(first) is first


# -- on models --
def test_model_requests_append_in_place(binary):
    model, X, y = binary
    assert model.request_records_ == ()
    states = [model.erasure_state_]
    for k in (1, 2, 3):
        model.partial_forget(X[:k], y[:k])
        X, y = X[k:], y[k:]
        states.append(model.erasure_state_)
    shared = states[1].records._shared
    assert all(s.records._shared is shared for s in states[1:])
    assert [_rows(s.records) for s in states] == [[], [1], [1, 2], [1, 2, 3]]
    assert [s.version for s in states] == [0, 1, 2, 3]
    assert [r.index for r in model.request_records_] == [1, 2, 3]


def test_shallow_copies_each_keep_their_own_record(binary):
    model, X, y = binary
    model.partial_forget(X[:1], y[:1])
    left, right = copy.copy(model), copy.copy(model)
    left.partial_forget(X[1:3], y[1:3])
    right.partial_forget(X[3:6], y[3:6])
    assert _rows(model.request_records_) == [1]
    assert _rows(left.request_records_) == [1, 2]
    assert _rows(right.request_records_) == [1, 3]
    assert right.request_records_[-1].index == 2


def test_concurrent_shallow_copies_each_keep_their_own_record(binary):
    """Shallow copies have locks of their own: the log's lock alone keeps them
    apart."""
    template, X, y = binary
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(20):
            copies = [copy.copy(template) for _ in range(2)]
            barrier = threading.Barrier(2)

            def forget(model, k, barrier=barrier):
                barrier.wait()
                model.partial_forget(X[:k], y[:k])

            threads = [
                threading.Thread(target=forget, args=(m, k))
                for m, k in zip(copies, (1, 2))
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert [_rows(m.request_records_) for m in copies] == [[1], [2]]
            assert template.request_records_ == ()
    finally:
        sys.setswitchinterval(interval)


def test_a_failed_request_leaves_no_visible_record(binary, monkeypatch):
    model, X, y = binary
    model.partial_forget(X[:1], y[:1])
    published = model.erasure_state_

    def fail(attributes):
        raise InvalidRequestError("refused after the state was built")

    monkeypatch.setattr(model, "_publish", fail)
    with pytest.raises(InvalidRequestError, match="after the state"):
        model.partial_forget(X[1:3], y[1:3])
    assert model.erasure_state_ is published
    assert _rows(model.request_records_) == [1]
    assert len(published.records._shared) == 2  # built, never published
    monkeypatch.undo()
    model.partial_forget(X[3:6], y[3:6])
    assert _rows(model.request_records_) == [1, 3]
    assert [r.index for r in model.request_records_] == [1, 2]


def test_an_old_pickle_holding_a_tuple_takes_requests(binary):
    model, X, y = binary
    model.partial_forget(X[:1], y[:1])
    state = model.__getstate__()
    records = tuple(state["erasure_state_"].records)
    state["erasure_state_"] = state["erasure_state_"].replace(records=records)
    old = object.__new__(type(model))
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert type(old.request_records_) is tuple and old.erasure_state_.version == 1
    old.partial_forget(X[1:3], y[1:3])
    assert isinstance(old.request_records_, RequestLog)
    assert _rows(old.request_records_) == [1, 2]
    assert old.request_records_[-1].index == 2


def _not_the_tip(model, X, y):
    """``model`` after two requests, its log's list extended by a copy of it."""
    model.partial_forget(X[:1], y[:1])
    model.partial_forget(X[1:3], y[1:3])
    copy.copy(model).partial_forget(X[3:6], y[3:6])
    assert len(model.erasure_state_.records._shared) == 3
    return model


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "skops"])
def test_round_trips_hold_only_the_prefix(binary, how):
    model, X, y = binary
    model = _not_the_tip(model, X, y)
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(model))
    elif how == "deepcopy":
        loaded = copy.deepcopy(model)
    else:
        sio = pytest.importorskip("skops.io")
        data = sio.dumps(model)
        untrusted = sio.get_untrusted_types(data=data)
        assert "sklearn_ssse._state.RequestLog" in untrusted
        loaded = sio.loads(data, trusted=untrusted)
    log = loaded.request_records_
    assert isinstance(log, RequestLog) and log == model.request_records_
    assert _rows(log._shared) == [1, 2]
    loaded.partial_forget(X[6:10], y[6:10])
    assert _rows(loaded.request_records_) == [1, 2, 4]
    assert _rows(model.request_records_) == [1, 2]


def test_multioutput_outputs_keep_their_records():
    X, y = _data()
    Y = np.column_stack([y, (X[:, 0] > 0).astype(int)])
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    model.partial_forget(X[:1], Y[:1])
    first = [est.erasure_state_ for est in model.estimators_]
    model.partial_forget(X[1:3], Y[1:3])
    for state, est in zip(first, model.estimators_):
        assert _rows(state.records) == [1]
        assert _rows(est.request_records_) == [1, 2]
        assert est.request_records_._shared is state.records._shared
    restored = pickle.loads(pickle.dumps(model))
    for est, old in zip(restored.estimators_, model.estimators_):
        assert est.request_records_ == old.request_records_


def test_mlp_keeps_its_records():
    X, y = _data(n_classes=3)
    model = ErasableMLPClassifier(
        hidden_layer_sizes=(4,), max_iter=200, random_state=0, forget_scale=0.1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    model.partial_forget(X[:1], y[:1])
    first = model.erasure_state_
    model.partial_forget(X[1:3], y[1:3])
    assert _rows(first.records) == [1]
    assert _rows(model.request_records_) == [1, 2]
    assert model.request_records_._shared is first.records._shared
