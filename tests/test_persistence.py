"""Atomic saves, crashes (real kill -9), and several processes sharing one model."""

import multiprocessing
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from _durability_worker import (
    plain_joblib_forget,
    save_loop,
    stale_then_retry,
    store_forget,
)
from numpy.testing import assert_array_equal
from sklearn.datasets import make_classification

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasableMultiOutputClassifier,
    ErasureLedger,
    InvalidRequestError,
    StaleStateError,
)
from sklearn_ssse.persistence import (
    CorruptModelFileError,
    ErasureStore,
    load,
    load_ledger,
    read_header,
    save,
)

KEY = b"k" * 32
fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork"
)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    return X, y


@pytest.fixture
def model(data):
    return ErasableLogisticRegression().fit(*data)


def _ids(model):
    return [r.request_id for r in model.request_records_]


def _fork(target, *args):
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    return process


# -- save / load ---------------------------------------------------------------------
def test_save_load_round_trip_with_ledger(tmp_path, data, model):
    X, y = data
    ledger = ErasureLedger(key=KEY).record_training(X, y)
    model.partial_forget(X[:2], y[:2], ledger=ledger, request_id="t1")
    path = tmp_path / "m.ssse"
    header = save(model, path, ledger=ledger)
    assert read_header(path) == header
    (entry,) = header["lineage"]
    state = model.erasure_state_
    assert entry["state_id"] == state.state_id
    assert entry["parent_id"] == state.parent_id
    assert entry["n_requests"] == 1 and header["ledger"]
    loaded = load(path)
    assert_array_equal(loaded.coef_, model.coef_)
    assert loaded.erasure_state_.state_id == state.state_id
    assert KEY not in path.read_bytes()  # the ledger's key is never saved
    restored = load_ledger(path, key=KEY)
    assert restored.n_forgotten == 2
    with pytest.raises(InvalidRequestError, match="already forgotten"):
        restored.check(restored.fingerprints(X[:1], y[:1]))
    assert not list(tmp_path.glob("*.ssse-tmp"))  # no temporary, no backup
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ssse"]


def test_failed_save_leaves_the_old_file(tmp_path, data, model, monkeypatch):
    X, y = data
    path = tmp_path / "m.ssse"
    save(model, path)
    before = path.read_bytes()
    model.partial_forget(X[:1], y[:1])

    def broken_dump(obj, file, protocol=None):
        file.write(b"x" * 1000)
        raise OSError("disk full")

    monkeypatch.setattr(pickle, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        save(model, path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.ssse-tmp"))


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.99])
def test_truncated_or_damaged_file_is_refused(tmp_path, model, cut):
    path = tmp_path / "m.ssse"
    save(model, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CorruptModelFileError):
        load(path)
    damaged = bytearray(data)
    damaged[-100] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptModelFileError, match="damaged"):
        load(path)


# -- kill -9 -------------------------------------------------------------------------
def _versions():
    """Two versions of a model large enough for a save to take a while."""
    X, y = make_classification(n_samples=400, n_features=150, random_state=1)
    a = ErasableLogisticRegression(max_iter=50).fit(X, y)
    b = pickle.loads(pickle.dumps(a)).partial_forget(X[:3], y[:3])
    return a, b


def _check_one_of(path, versions):
    loaded = load(path)  # raises if corrupt
    ids = [v.erasure_state_.state_id for v in versions]
    assert loaded.erasure_state_.state_id in ids
    version = versions[ids.index(loaded.erasure_state_.state_id)]
    assert_array_equal(loaded.coef_, version.coef_)


@fork
def test_kill_9_during_saves_leaves_old_or_new(tmp_path):
    versions = _versions()
    path = str(tmp_path / "m.ssse")
    rng = random.Random(0)
    ctx = multiprocessing.get_context("fork")
    for _ in range(15):
        save(versions[0], path)
        ready = ctx.Event()
        process = ctx.Process(target=save_loop, args=(path, versions, ready.set))
        process.start()
        assert ready.wait(10)
        time.sleep(rng.uniform(0, 0.04))
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert process.exitcode == -signal.SIGKILL
        _check_one_of(path, versions)
    # The store removes the temporaries the killed saves left (they hold states).
    store = ErasureStore(path)
    store.save(load(path))
    assert not list(tmp_path.glob("*.ssse-tmp"))


def test_kill_9_of_a_fresh_interpreter(tmp_path):
    versions = _versions()
    path = str(tmp_path / "m.ssse")
    sources = []
    for i, v in enumerate(versions):
        sources.append(str(tmp_path / f"v{i}.joblib"))
        joblib.dump(v, sources[-1])
    save(versions[0], path)
    worker = Path(__file__).with_name("_durability_worker.py")
    process = subprocess.Popen(
        [sys.executable, str(worker), "save-loop", *sources, path],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    _check_one_of(path, versions)


# -- several processes -----------------------------------------------------------------
@fork
def test_plain_joblib_loses_a_deletion(tmp_path, data, model):
    """The issue's lost update, reproduced: the test below can fail."""
    X, y = data
    path = str(tmp_path / "m.joblib")
    joblib.dump(model, path)
    ctx = multiprocessing.get_context("fork")
    barrier, first_saved = ctx.Barrier(2), ctx.Event()
    workers = [  # both load before either saves; the saves one after the other
        _fork(plain_joblib_forget, path, X[:2], y[:2], barrier, None, first_saved),
        _fork(plain_joblib_forget, path, X[2:4], y[2:4], barrier, first_saved),
    ]
    for w in workers:
        w.join()
        assert w.exitcode == 0
    assert len(joblib.load(path).request_records_) == 1  # one deletion lost


@fork
def test_two_processes_through_the_store_lose_nothing(tmp_path, data, model):
    X, y = data
    path = str(tmp_path / "m.ssse")
    ErasureStore(path).save(model)
    barrier = multiprocessing.get_context("fork").Barrier(2)
    workers = [
        _fork(store_forget, path, X[rows], y[rows], rid, barrier, KEY)
        for rows, rid in ((slice(0, 2), "a"), (slice(2, 4), "b"))
    ]
    for w in workers:
        w.join()
        assert w.exitcode == 0
    assert sorted(_ids(load(path))) == ["a", "b"]
    reference = ErasableLogisticRegression().fit(X, y).partial_forget(X[:2], y[:2])
    assert load(path).n_forgotten_ == 4 == reference.n_forgotten_ + 2


@fork
def test_stale_save_across_processes_is_refused_then_retried(tmp_path, data, model):
    X, y = data
    path = str(tmp_path / "m.ssse")
    ErasureStore(path).save(model)
    barrier = multiprocessing.get_context("fork").Barrier(2)
    outs = [str(tmp_path / f"out{i}") for i in range(2)]
    workers = [
        _fork(stale_then_retry, path, X[rows], y[rows], rid, barrier, out)
        for rows, rid, out in ((slice(0, 2), "a", outs[0]), (slice(2, 4), "b", outs[1]))
    ]
    for w in workers:
        w.join()
        assert w.exitcode == 0
    assert sorted(Path(o).read_text() for o in outs) == ["saved", "stale"]
    assert sorted(_ids(load(path))) == ["a", "b"]


# -- compare-and-swap in one process ------------------------------------------------
def test_stale_save_is_refused(tmp_path, data, model):
    X, y = data
    store = ErasureStore(tmp_path / "m.ssse")
    store.save(model)
    first, second = store.load(), store.load()
    store.save(first.partial_forget(X[:2], y[:2], request_id="a"))
    before = store.header()
    second.partial_forget(X[2:4], y[2:4], request_id="b")
    with pytest.raises(StaleStateError, match="Reload the newest state") as info:
        store.save(second)
    assert isinstance(info.value, ValueError)
    assert store.header()["lineage"] == before["lineage"]
    assert _ids(store.load()) == ["a"]


def test_descendants_several_requests_ahead_are_saved(tmp_path, data, model):
    X, y = data
    store = ErasureStore(tmp_path / "m.ssse")
    store.save(model)
    worker = store.load()
    for i in range(3):  # from the fit state, three requests ahead
        worker.partial_forget(X[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2])
    store.save(worker)
    worker = store.load()
    for i in range(3, 5):  # from a state with requests, two ahead
        worker.partial_forget(X[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2])
    store.save(worker)
    store.save(worker)  # the same state again
    assert read_header(store.path)["lineage"][0]["n_requests"] == 5


def test_refit_replaces_the_file_only_with_overwrite(tmp_path, data, model):
    X, y = data
    store = ErasureStore(tmp_path / "m.ssse")
    store.save(model.partial_forget(X[:2], y[:2]))
    refit = ErasableLogisticRegression().fit(X[2:], y[2:])
    with pytest.raises(StaleStateError):
        store.save(refit)
    refit.partial_forget(X[2:4], y[2:4]).partial_forget(X[4:6], y[4:6])
    with pytest.raises(StaleStateError):  # another fit, two requests ahead
        store.save(refit)
    store.save(refit, overwrite=True)
    assert store.header()["lineage"][0]["state_id"] == refit.erasure_state_.state_id


def test_transaction_saves_on_success_and_nothing_on_error(tmp_path, data, model):
    X, y = data
    store = ErasureStore(tmp_path / "m.ssse")
    store.save(model)
    with store.transaction() as m:
        m.partial_forget(X[:2], y[:2], request_id="a")
    assert _ids(store.load()) == ["a"]
    before = Path(store.path).read_bytes()
    with pytest.raises(RuntimeError):
        with store.transaction() as m:
            m.partial_forget(X[2:4], y[2:4], request_id="b")
            raise RuntimeError("the service failed before acknowledging")
    assert Path(store.path).read_bytes() == before
    with store.transaction():  # no change: nothing written
        pass
    assert Path(store.path).read_bytes() == before


def test_store_with_ledger(tmp_path, data, model):
    X, y = data
    ledger = ErasureLedger(key=KEY).record_training(X, y)
    store = ErasureStore(tmp_path / "m.ssse", ledger_key=KEY)
    store.save(model, ledger=ledger)
    store.forget(X[:2], y[:2], request_id="a")
    with store.transaction(with_ledger=True) as (m, led):
        assert led.n_forgotten == 2
        with pytest.raises(InvalidRequestError, match="already forgotten"):
            m.partial_forget(X[:1], y[:1], ledger=led, request_id="b")
    with pytest.raises(ValueError, match="ledger"):
        store.save(store.load())  # would drop the ledger
    assert store.load_ledger().n_forgotten == 2


def test_forget_retry_is_idempotent(tmp_path, data, model):
    from sklearn_ssse.journal import Journal

    X, y = data
    journal = Journal(tmp_path / "j.jsonl", key=KEY)
    store = ErasureStore(tmp_path / "m.ssse", journal=journal)
    store.save(model)
    record = store.forget(X[:2], y[:2], request_id="a")
    assert record.request_id == "a" and record.n_rows == 2
    assert store.forget(X[:2], y[:2], request_id="a") == record  # a retry
    assert len(store.load().request_records_) == 1
    with pytest.raises(InvalidRequestError, match="other rows"):
        store.forget(X[2:4], y[2:4], request_id="a")
    with pytest.raises(InvalidRequestError, match="request_id"):
        store.forget(X[2:4], y[2:4], request_id="")
    assert store.forget(X[:0], y[:0], request_id="empty") is None
    assert [e["request_id"] for e in journal.entries()] == ["a"]


def test_refused_request_is_neither_journaled_nor_saved(tmp_path, data, model):
    from sklearn_ssse.journal import Journal

    X, y = data
    journal = Journal(tmp_path / "j.jsonl", key=KEY)
    store = ErasureStore(tmp_path / "m.ssse", journal=journal)
    store.save(model)
    before = Path(store.path).read_bytes()
    with pytest.raises(InvalidRequestError):
        store.forget(X[:2], np.array([7, 7]), request_id="bad")  # unseen labels
    assert Path(store.path).read_bytes() == before
    assert journal.entries() == []


def test_multioutput_store(tmp_path, data):
    X, y = data
    Y = np.column_stack([y, 1 - y])
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    store = ErasureStore(tmp_path / "m.ssse")
    store.save(model)
    assert len(store.header()["lineage"]) == 2
    stale = store.load()
    record = store.forget(X[:2], Y[:2], request_id="a")
    assert record.request_id == "a"
    stale.partial_forget(X[2:4], Y[2:4], request_id="b")
    with pytest.raises(StaleStateError):
        store.save(stale)
    loaded = store.load()
    assert all(
        [r.request_id for r in e.request_records_] == ["a"] for e in loaded.estimators_
    )


def test_threads_sharing_one_store(tmp_path, data, model):
    from concurrent.futures import ThreadPoolExecutor

    X, y = data
    store = ErasureStore(tmp_path / "m.ssse")
    store.save(model)
    other = ErasureStore(tmp_path / "m.ssse")  # a second handle on the same file

    def forget(i):
        s = store if i % 2 else other
        s.forget(X[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2], request_id=f"t{i}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(forget, range(8)))
    assert sorted(_ids(store.load())) == [f"t{i}" for i in range(8)]
