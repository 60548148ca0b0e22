"""The journal: fsynced appends, torn lines, replay after a crash, privacy."""

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from sklearn_ssse import ErasableLogisticRegression, ErasureLedger, InvalidRequestError
from sklearn_ssse.journal import Journal, JournalCorruptError
from sklearn_ssse.persistence import ErasureStore, load, save

KEY = b"j" * 32
ENTRY_KEYS = {
    "v",
    "type",
    "request_id",
    "time",
    "n_rows",
    "state_id",
    "parent_id",
    "fit",
    "fingerprints",
}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    return X, np.where(y == 1, "approved", "declined")  # labels to search for


@pytest.fixture
def setup(tmp_path, data):
    X, y = data
    journal = Journal(tmp_path / "j.jsonl", key=KEY)
    store = ErasureStore(tmp_path / "m.ssse", journal=journal, erasure_key=b"e" * 32)
    store.save(ErasableLogisticRegression().fit(X, y))
    requests = {f"r{i}": np.arange(3 * i, 3 * i + 3) for i in range(4)}

    def rows_for(request_id):
        rows = requests[request_id]
        return X[rows], y[rows], None

    return store, journal, rows_for


def _crash_before_save(store, X, y, request_id):
    """``store.forget`` up to the journal append, then a crash: the file keeps
    the state it had."""
    before = store.load()
    store.forget(X, y, request_id=request_id)
    save(before, store.path)  # as if the atomic save never happened


def _ids(model):
    return [r.request_id for r in model.request_records_]


def test_entries_and_torn_last_line(tmp_path, data):
    X, y = data
    journal = Journal(tmp_path / "j.jsonl", key=KEY)
    assert journal.entries() == []
    journal.record(X[:2], y[:2], request_id="a")
    journal.record(X[2:3], y[2:3], request_id="b")
    path = Path(journal.path)
    full = path.read_bytes()
    path.write_bytes(full[:-20])  # a crash in the middle of appending "b"
    assert [e["request_id"] for e in journal.entries()] == ["a"]
    journal.record(X[3:4], y[3:4], request_id="c")  # cuts the torn line first
    assert [e["request_id"] for e in journal.entries()] == ["a", "c"]
    assert path.read_bytes().count(b"\n") == 2
    path.write_bytes(b"garbage\n" + path.read_bytes())
    with pytest.raises(JournalCorruptError, match="line 1"):
        journal.entries()
    with pytest.raises(TypeError):
        pickle.dumps(journal)  # it holds the key
    with pytest.raises(ValueError, match="key"):
        Journal(tmp_path / "x", key=b"short")


def test_forget_journals_before_acknowledging(setup, data):
    store, journal, _ = setup
    X, y = data
    before = store.load().erasure_state_
    record = store.forget(X[:3], y[:3], request_id="r0")
    (entry,) = journal.entries()
    assert entry["request_id"] == "r0" and entry["n_rows"] == 3
    assert (
        entry["state_id"] == record.state_id == store.header()["lineage"][0]["state_id"]
    )
    assert entry["parent_id"] == before.state_id
    assert journal.matches(entry, X[:3], y[:3])
    assert not journal.matches(entry, X[:3], y[:3], np.full(3, 2.0))


def test_replay_after_a_crash_is_idempotent(setup, data):
    store, journal, rows_for = setup
    X, y = data
    store.forget(*rows_for("r0")[:2], request_id="r0")
    _crash_before_save(store, *rows_for("r1")[:2], request_id="r1")
    assert _ids(store.load()) == ["r0"]  # the crash lost r1's save...
    assert store.replay(journal, rows_for) == ["r1"]  # ...the journal brings it back
    once = store.load()
    assert _ids(once) == ["r0", "r1"]
    content = Path(store.path).read_bytes()
    assert store.replay(journal, rows_for) == []  # replaying twice = once
    assert Path(store.path).read_bytes() == content
    reference = ErasableLogisticRegression().fit(X, y)
    reference.partial_forget(X[:3], y[:3]).partial_forget(X[3:6], y[3:6])
    np.testing.assert_allclose(once.coef_, reference.coef_, rtol=1e-10, atol=1e-12)
    store.forget(*rows_for("r2")[:2], request_id="r2")  # life goes on
    assert _ids(store.load()) == ["r0", "r1", "r2"]


def test_replay_of_requests_several_states_behind(setup, data):
    store, journal, rows_for = setup
    X, y = data
    _crash_before_save(store, *rows_for("r0")[:2], request_id="r0")
    # The caller was not told (crash); a later request is applied and saved.
    store.forget(*rows_for("r1")[:2], request_id="r1")
    store.forget(*rows_for("r2")[:2], request_id="r2")
    assert store.replay(journal, rows_for) == ["r0"]
    assert _ids(store.load()) == ["r1", "r2", "r0"]


def test_replay_checks_the_rows(setup, data):
    store, journal, rows_for = setup
    X, y = data
    _crash_before_save(store, *rows_for("r0")[:2], request_id="r0")
    before = Path(store.path).read_bytes()
    with pytest.raises(InvalidRequestError, match="fingerprints"):
        store.replay(journal, lambda rid: (X[50:53], y[50:53], None))
    assert Path(store.path).read_bytes() == before
    with pytest.raises(TypeError):
        store.replay(journal)


def test_failed_save_is_aborted_and_not_replayed(setup, data, monkeypatch):
    store, journal, rows_for = setup
    X, y = data

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store, "_save_locked", disk_full)
    with pytest.raises(OSError):
        store.forget(*rows_for("r0")[:2], request_id="r0")
    monkeypatch.undo()
    assert [e["type"] for e in journal.entries()] == ["forget", "abort"]
    assert store.replay(journal, rows_for) == []
    assert _ids(store.load()) == []
    store.forget(*rows_for("r0")[:2], request_id="r0")  # the client's retry
    assert _ids(store.load()) == ["r0"]
    assert store.replay(journal, rows_for) == []


def test_replay_skips_another_lineage(setup, data):
    store, journal, rows_for = setup
    X, y = data
    _crash_before_save(store, *rows_for("r0")[:2], request_id="r0")
    refit = ErasableLogisticRegression().fit(X[10:], y[10:])
    refit.partial_forget(X[10:12], y[10:12]).partial_forget(X[12:14], y[12:14])
    store.save(refit, overwrite=True)
    with pytest.warns(UserWarning, match="another lineage"):
        assert store.replay(journal, rows_for) == []
    assert len(store.load().request_records_) == 2


def test_replay_with_a_ledger(tmp_path, data):
    X, y = data
    ledger = ErasureLedger(key=KEY).record_training(X, y)
    journal = Journal(tmp_path / "j.jsonl", key=KEY)
    store = ErasureStore(tmp_path / "m.ssse", journal=journal, ledger_key=KEY)
    store.save(ErasableLogisticRegression().fit(X, y), ledger=ledger)
    before_model, before_ledger = store.load(), store.load_ledger()
    store.forget(X[:2], y[:2], request_id="a")
    save(before_model, store.path, ledger=before_ledger)  # crash before the save
    assert store.replay(journal, lambda rid: (X[:2], y[:2], None)) == ["a"]
    assert store.load_ledger().n_forgotten == 2


def test_journal_holds_no_row_values(setup, data):
    store, journal, rows_for = setup
    X, y = data
    for rid in ("r0", "r1"):
        store.forget(*rows_for(rid)[:2], request_id=rid)
    text = Path(journal.path).read_text()
    erased = X[:6]
    for value in erased.ravel():
        for form in (repr(float(value)), f"{value:.6g}", f"{value:.4f}"):
            assert form not in text
    assert "approved" not in text and "declined" not in text
    for line in text.splitlines():
        entry = json.loads(line)
        assert set(entry) == ENTRY_KEYS
        assert all(re.fullmatch("[0-9a-f]{32}", f) for f in entry["fingerprints"])
        assert entry["fingerprints"] == sorted(entry["fingerprints"])
        others = {k: v for k, v in entry.items() if k != "fingerprints"}
        assert all(isinstance(v, str | int | None) for v in others.values())
    assert KEY.decode() not in text
    # The saved model's records hold no row values either (it is loadable).
    assert _ids(load(store.path)) == ["r0", "r1"]
