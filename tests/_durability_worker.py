"""Worker processes for the durability tests (tests/test_persistence.py).

The functions run in forked processes (fast: the libraries are imported already);
``python tests/_durability_worker.py save-loop MODEL_A MODEL_B TARGET`` runs the
save loop in a fresh interpreter, for the test that kills a real subprocess.
"""

import sys

import joblib


def save_loop(path, models, ready=None):
    """Save the models over ``path`` in turn, forever (until killed)."""
    from sklearn_ssse.persistence import save

    i = 0
    if ready is not None:
        ready()
    while True:
        save(models[i % len(models)], path)
        i += 1


def plain_joblib_forget(path, X, y, barrier, after=None, done=None):
    """The lost update of issue 23: load, wait for the other worker, erase, dump
    (after the event ``after``, when given; then set ``done``)."""
    model = joblib.load(path)
    barrier.wait()
    model.partial_forget(X, y)
    if after is not None:
        after.wait(30)
    joblib.dump(model, path)
    if done is not None:
        done.set()


def store_forget(path, X, y, request_id, barrier, key=None):
    """The recommended pattern: ``store.forget`` (lock, newest state, journal)."""
    from sklearn_ssse.journal import Journal
    from sklearn_ssse.persistence import ErasureStore

    journal = None if key is None else Journal(path + ".journal", key=key)
    store = ErasureStore(path, journal=journal)
    barrier.wait()
    store.forget(X, y, request_id=request_id)


def stale_then_retry(path, X, y, request_id, barrier, out):
    """Load, wait, erase, try to save; on a stale file, redo it in a transaction.

    Writes ``stale`` or ``saved`` to the file ``out``.
    """
    from sklearn_ssse.exceptions import StaleStateError
    from sklearn_ssse.persistence import ErasureStore

    store = ErasureStore(path)
    model = store.load()
    barrier.wait()
    model.partial_forget(X, y, request_id=request_id)
    try:
        store.save(model)
        outcome = "saved"
    except StaleStateError:
        outcome = "stale"
        with store.transaction() as fresh:
            fresh.partial_forget(X, y, request_id=request_id)
    with open(out, "w") as f:
        f.write(outcome)


if __name__ == "__main__":
    if sys.argv[1] == "save-loop":
        models = [joblib.load(p) for p in sys.argv[2:4]]
        save_loop(sys.argv[4], models, ready=lambda: print("ready", flush=True))
