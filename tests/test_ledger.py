"""The ledger: atomic claims between threads, nothing kept of erased rows, raw
rows (DataFrames) and ids, identical rows of different people, float32 weights."""

import pickle
import threading

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.exceptions import InvalidRequestError
from sklearn_ssse.ledger import ErasureLedger, forget_ids, row_fingerprints

pd = pytest.importorskip("pandas")

KEY = b"ledger-test-key-0123456789abcdef"
NOT_HELD = "not training rows this ledger holds"


def _data(n=60, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return X, y


def _frame(n=40, seed=0):
    """Customers with numeric, categorical and string columns, NaNs and an id."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i % (n // 2):04d}" for i in range(n)])  # two rows each
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 80, size=n).astype(float),
            "spend": rng.normal(50, 10, size=n),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "max"], size=n)),
            "city": rng.choice(["Lyon", "Oslo", None], size=n),
            "visits": pd.array(rng.integers(0, 5, size=n), dtype="Int64"),
        }
    )
    df.loc[::7, "spend"] = np.nan
    df.loc[::5, "visits"] = pd.NA
    y = (rng.random(n) > 0.5).astype(int)
    return df, y, ids


def _state(model):
    return (model.coef_.copy(), model.intercept_.copy(), model.n_forgotten_)


# -- thread safety and atomic claims -----------------------------------------------
def test_two_threads_claiming_one_row_cannot_both_pass():
    X, y = _data()
    ledger = ErasureLedger(KEY).record_training(X, y)
    fps = ledger.fingerprints(X[:1], y[:1])
    barrier = threading.Barrier(8)
    outcomes = []

    def erase():
        barrier.wait()
        try:
            claim = ledger.claim(fps)
        except InvalidRequestError:
            outcomes.append("refused")
        else:
            outcomes.append("claimed")
            claim.commit()

    threads = [threading.Thread(target=erase) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["claimed"] + ["refused"] * 7
    assert ledger.n_forgotten == 1


def test_a_pending_claim_refuses_a_second_request_until_released():
    X, y = _data()
    ledger = ErasureLedger(KEY).record_training(X, y)
    fps = ledger.fingerprints(X[:2], y[:2])
    claim = ledger.claim(fps)
    with pytest.raises(InvalidRequestError, match="claimed by a request in progress"):
        ledger.check(fps[:1])
    claim.release()
    claim.release()  # idempotent
    ledger.check(fps)
    assert ledger.n_forgotten == 0 and claim.state == "released"
    with pytest.raises(InvalidRequestError, match="already released"):
        claim.commit()


def test_a_failed_update_inside_a_claim_marks_nothing():
    X, y = _data()
    ledger = ErasureLedger(KEY).record_training(X, y)
    fps = ledger.fingerprints(X[:3], y[:3])
    with pytest.raises(RuntimeError), ledger.claim(fps):
        raise RuntimeError("the model failed to publish")
    assert ledger.n_forgotten == 0 and ledger.n_remaining == len(y)
    with ledger.claim(fps) as claim:
        pass
    assert claim.state == "committed" and ledger.n_forgotten == 3
    assert claim._rows.size == 0  # an ended claim keeps nothing of the rows


def test_concurrent_record_and_check_never_break():
    X, y = _data(n=200)
    ledger = ErasureLedger(KEY).record_training(X[:20], y[:20])
    fps = ledger.fingerprints(X[:20], y[:20])
    errors = []
    done = threading.Event()

    def record():
        try:
            for start in range(20, 200, 10):
                ledger.record_training(X[start : start + 10], y[start : start + 10])
        except Exception as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)
        finally:
            done.set()

    def check(own):  # each thread claims its own rows
        try:
            while not done.is_set():
                ledger.check(fps[15:])
                ledger.claim(own).release()
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=record)] + [
        threading.Thread(target=check, args=(fps[5 * i : 5 * i + 5],)) for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ledger.n_remaining == 200


# -- privacy: nothing kept of an erased row ----------------------------------------
def test_an_erased_row_leaves_no_fingerprint_and_one_message():
    X, y = _data()
    model = ErasableLogisticRegression().fit(X, y)
    ledger = ErasureLedger(KEY).record_training(X, y)
    erased = ledger.fingerprints(X[:2], y[:2])
    model.partial_forget(X[:2], y[:2], ledger=ledger)
    dump = pickle.dumps(ledger)
    assert all(fp not in dump for fp in erased.tolist())
    assert not np.isin(erased, ledger._fingerprints).any()
    frozen = _state(model)
    with pytest.raises(InvalidRequestError, match=NOT_HELD) as repeat:
        model.partial_forget(X[:1], y[:1], ledger=ledger)
    X_new = X[:1] + 100.0
    with pytest.raises(InvalidRequestError, match=NOT_HELD) as never:
        ErasureLedger(KEY).record_training(X, y).check(
            ledger.fingerprints(X_new, y[:1])
        )
    # Erased and never trained read the same.
    assert str(repeat.value) == str(never.value)
    np.testing.assert_array_equal(_state(model)[0], frozen[0])
    assert ledger.n_forgotten == 2 and ledger.n_remaining == len(y) - 2


def test_copies_are_counted_down_and_the_last_one_drops_the_fingerprint():
    X, y = _data()
    X3 = np.vstack([X, X[:1], X[:1]])
    y3 = np.concatenate([y, y[:1], y[:1]])
    ledger = ErasureLedger(KEY).record_training(X3, y3)
    fp = ledger.fingerprints(X[:1], y[:1])
    ledger.mark_forgotten(fp)
    assert fp[0] in ledger._fingerprints.tolist()  # two copies remain
    ledger.mark_forgotten(np.repeat(fp, 2))
    assert fp[0] not in ledger._fingerprints.tolist()
    with pytest.raises(InvalidRequestError, match=NOT_HELD):
        ledger.check(fp)


# -- identical rows of different people ---------------------------------------------
def test_identical_rows_are_accepted_while_copies_remain():
    X, y = _data()
    X = np.vstack([X, X[:1], X[:1]])  # three people with the same row
    y = np.concatenate([y, y[:1], y[:1]])
    model = ErasableLogisticRegression().fit(X, y)
    ledger = ErasureLedger(KEY).record_training(X, y)
    model.partial_forget(X[[0, -1]], y[[0, -1]], ledger=ledger)  # two of three
    assert model.n_forgotten_ == 2
    frozen = _state(model)
    with pytest.raises(InvalidRequestError, match=NOT_HELD):
        model.partial_forget(X[[0, -1]], y[[0, -1]], ledger=ledger)  # one left
    np.testing.assert_array_equal(_state(model)[0], frozen[0])
    model.partial_forget(X[:1], y[:1], ledger=ledger)
    assert ledger.n_forgotten == 3


# -- dtypes --------------------------------------------------------------------------
def test_float32_data_with_weights_is_recognised():
    X, y = _data()
    X = X.astype(np.float32)
    weights = np.full(len(y), 0.1)
    model = ErasableLogisticRegression().fit(X, y, sample_weight=weights)
    ledger = ErasureLedger(KEY).record_training(X, y, weights)
    model.partial_forget(X[:3], y[:3], weights[:3], ledger=ledger)
    assert ledger.n_forgotten == 3
    # float64 copies of the same float32 rows are the same rows
    ledger.check(ledger.fingerprints(X[3:5].astype(np.float64), y[3:5], weights[3:5]))


# -- raw rows ------------------------------------------------------------------------
def test_a_dataframe_and_the_same_rows_as_an_object_array_agree():
    df, y, _ = _frame()
    as_objects = df.to_numpy(dtype=object)
    a = row_fingerprints(df, y, key=KEY)
    b = row_fingerprints(as_objects, y, key=KEY)
    np.testing.assert_array_equal(a, b)
    # One missing value: None, NaN and pd.NA are the same value.
    other = as_objects.copy()
    missing = np.array([v is None or v is pd.NA for v in other.ravel()]).reshape(
        other.shape
    )
    other[missing] = np.nan
    np.testing.assert_array_equal(row_fingerprints(other, y, key=KEY), a)
    # Different rows, labels or weights give different fingerprints.
    assert len(np.unique(a)) == len(a)
    assert not np.array_equal(row_fingerprints(df, 1 - y, key=KEY), a)
    assert not np.array_equal(row_fingerprints(df, y, np.full(len(y), 2.0), key=KEY), a)


def test_a_numeric_dataframe_is_the_same_rows_as_its_array():
    X, y = _data()
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    np.testing.assert_array_equal(
        row_fingerprints(df, y, key=KEY), row_fingerprints(X, y, key=KEY)
    )
    np.testing.assert_array_equal(
        row_fingerprints(X.astype(object), y, key=KEY), row_fingerprints(X, y, key=KEY)
    )


def test_strings_are_not_numbers_and_rounded_floats_do_not_match():
    rows = np.array([["1.5", 1.0]], dtype=object)
    numbers = np.array([[1.5, 1.0]], dtype=object)
    assert row_fingerprints(rows, [0], key=KEY) != row_fingerprints(
        numbers, [0], key=KEY
    )
    df, y, ids = _frame()
    ledger = ErasureLedger(KEY).record_training(df, y, ids=ids)
    rounded = df.round({"spend": 6})
    with pytest.raises(InvalidRequestError, match=NOT_HELD):
        ledger.check(ledger.fingerprints(rounded[1:3], y[1:3]))


# -- ids ------------------------------------------------------------------------------
def test_ids_are_never_kept_in_clear():
    df, y, ids = _frame()
    ledger = ErasureLedger(KEY).record_training(df, y, ids=ids)
    dump = pickle.dumps(ledger)
    assert all(i.encode() not in dump for i in np.unique(ids))
    assert b"Lyon" not in dump and KEY not in dump
    assert ledger.n_ids == len(np.unique(ids))
    assert ledger.rows_of(["C0003"]).shape == (2,)


def test_check_ids_refuses_unknown_ids_wrong_rows_and_erased_ids():
    df, y, ids = _frame()
    ledger = ErasureLedger(KEY).record_training(df, y, ids=ids)
    rows = ids == "C0003"
    ledger.check_ids(["C0003"], df[rows], y[rows])
    ledger.check_ids(ids[rows], df[rows], y[rows])  # an aligned id column works
    with pytest.raises(InvalidRequestError, match="not ids of training rows"):
        ledger.check_ids(["C9999"], df[rows], y[rows])
    with pytest.raises(InvalidRequestError, match="not exactly the rows"):
        ledger.check_ids(["C0003"], df[rows][:1], y[rows][:1])  # a row missing
    with pytest.raises(InvalidRequestError, match="not exactly the rows"):
        ledger.check_ids(["C0003"], df[ids == "C0004"], y[ids == "C0004"])
    with pytest.raises(InvalidRequestError, match="not exactly the rows"):
        ledger.check_ids(["C0003"], df[rows], 1 - y[rows])  # other labels
    with pytest.raises(InvalidRequestError, match="not exactly the rows"):
        ledger.check_ids(["C0003"], df[rows].round({"spend": 6}), y[rows])  # rounded
    ledger.claim_ids(["C0003"], df[rows], y[rows]).commit()
    assert ledger.n_forgotten == 2
    with pytest.raises(InvalidRequestError, match="not ids of training rows") as erased:
        ledger.check_ids(["C0003"], df[rows], y[rows])
    with pytest.raises(
        InvalidRequestError, match="not ids of training rows"
    ) as unknown:
        ledger.check_ids(["C9999"], df[rows], y[rows])
    assert str(erased.value) == str(unknown.value)
    with pytest.raises(InvalidRequestError, match="knows no ids"):
        ErasureLedger(KEY).record_training(df, y).check_ids(["C0003"], df[:1], y[:1])


def test_forget_ids_erases_from_a_pipeline_the_scaler_update_included():
    X, y = _data(n=80)
    ids = np.arange(80) // 2  # integer ids, two rows each
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    pipe = make_pipeline(StandardScaler(), ErasableLogisticRegression()).fit(df, y)
    ledger = ErasureLedger(KEY).record_training(df, y, ids=ids)
    for customer, ticket in [(3, "T-1"), (7, "T-2"), (11, None)]:
        rows = ids == customer
        forget_ids(pipe, ledger, [customer], df[rows], y[rows], request_id=ticket)
    assert pipe[-1].n_forgotten_ == 6 and ledger.n_forgotten == 6
    assert int(pipe[0].n_samples_seen_) == 74
    assert ledger.n_ids == 37
    records = pipe[-1].request_records_
    assert [r.request_id for r in records][:2] == ["T-1", "T-2"]
    frozen = _state(pipe[-1])
    rows = ids == 3
    with pytest.raises(InvalidRequestError, match="not ids of training rows"):
        forget_ids(pipe, ledger, [3], df[rows], y[rows])
    np.testing.assert_array_equal(_state(pipe[-1])[0], frozen[0])


def test_forget_ids_releases_the_claim_when_the_model_refuses():
    df, y, ids = _frame()
    ledger = ErasureLedger(KEY).record_training(df, y, ids=ids)
    rows = ids == "C0001"
    with pytest.raises(ValueError):
        forget_ids(object(), ledger, ["C0001"], df[rows], y[rows])
    assert ledger.n_forgotten == 0
    ledger.check_ids(["C0001"], df[rows], y[rows])  # still there, not claimed


def test_a_row_erased_by_value_takes_its_id_reference_with_it():
    X, y = _data()
    ids = np.arange(len(y)) // 3
    ledger = ErasureLedger(KEY).record_training(X, y, ids=ids)
    ledger.mark_forgotten(ledger.fingerprints(X[:1], y[:1]))
    assert ledger.rows_of([0]).shape == (2,)
    with pytest.raises(InvalidRequestError, match="not exactly the rows"):
        ledger.check_ids([0], X[:3], y[:3])
    ledger.check_ids([0], X[1:3], y[1:3])


def test_a_ledger_pickled_by_the_previous_format_loads():
    X, y = _data()
    ledger = ErasureLedger(KEY).record_training(X, y)
    fps, counts = ledger._fingerprints, ledger._counts
    forgotten = np.zeros_like(counts)
    forgotten[0] = 1
    old = {"_key": None, "_fingerprints": fps, "_counts": counts}
    old["_forgotten"] = forgotten
    loaded = ErasureLedger.__new__(ErasureLedger)
    loaded.__setstate__(old)
    loaded.set_key(KEY)
    assert loaded.n_training_rows == len(y) and loaded.n_forgotten == 1
    assert loaded.n_remaining == len(y) - 1
    assert fps[0] not in loaded._fingerprints.tolist()


def test_forget_ids_accepts_identical_rows_the_training_set_held():
    X, y = _data(n=60)
    X[1], y[1] = X[0], y[0]  # one customer's two identical rows
    ids = np.arange(60) // 2
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    pipe = make_pipeline(StandardScaler(), ErasableLogisticRegression()).fit(df, y)
    ledger = ErasureLedger(KEY).record_training(df, y, ids=ids)
    forget_ids(pipe, ledger, [0], df[:2], y[:2])
    assert pipe[-1].n_forgotten_ == 2 and ledger.n_forgotten == 2
