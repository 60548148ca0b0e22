"""Can an acknowledged erasure be lost? Multi-process and kill -9 soaks (issue 23).

Real processes (forked, so that each run costs no interpreter start), on a local
disk, with the library's own saves (fsync included):

1. **Several workers**: 2 to 4 worker processes, started together, each erasing its
   own disjoint rows (2 requests of 2 rows each) from one model file. Through
   :class:`~sklearn_ssse.persistence.ErasureStore` (``store.forget``), and, as the
   baseline of the issue, by ``joblib.load`` / ``partial_forget`` /
   ``joblib.dump``. *lost*: requests that returned but are not in the final
   file's records.
2. **kill -9 during saves**: a process saving two versions of a model in turn is
   killed at a random moment (0-40 ms); *corrupt*: files that no longer load, or
   load as neither version. With :func:`~sklearn_ssse.persistence.save` and, as
   the baseline, ``joblib.dump`` over the file.
3. **kill -9 during requests**: a process applying requests through
   ``store.forget`` (with a journal) is killed at a random moment; then
   ``store.replay`` runs. *lost*: acknowledged requests (`forget` returned)
   missing after the replay; *twice*: requests applied twice; *replayed*: runs
   where the replay re-applied a journaled request the crash kept from the file.

Run ``python benchmarks/bench_durability.py`` (about 3 minutes on 2 cores); writes
``benchmarks/results/durability.md``.
"""

import datetime
import multiprocessing
import os
import pickle
import platform
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import make_classification

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.journal import Journal
from sklearn_ssse.persistence import ErasureStore, load, save

RESULTS = Path(__file__).parent / "results" / "durability.md"
KEY = b"bench-durability-key-0123456789ab"
CTX = multiprocessing.get_context("fork")
# SSSE_BENCH_QUICK=1: a few runs of each, to check the script.
_QUICK = os.environ.get("SSSE_BENCH_QUICK") == "1"
N_WORKER_RUNS = 4 if _QUICK else 200
N_BASELINE_RUNS = 4 if _QUICK else 40
N_KILL_RUNS = 4 if _QUICK else 100
N_BASELINE_KILLS = 4 if _QUICK else 40
N_REQUEST_KILLS = 4 if _QUICK else 60
REQUESTS_PER_WORKER = 2


def _data():
    X, y = make_classification(n_samples=300, n_features=20, random_state=0)
    return X, y


def _rows(worker, request):
    start = 2 * (worker * REQUESTS_PER_WORKER + request)
    return np.arange(start, start + 2)


# -- 1. several workers --------------------------------------------------------------
def _store_worker(path, X, y, worker, barrier):
    store = ErasureStore(path, journal=Journal(path + ".journal", key=KEY))
    barrier.wait()
    for r in range(REQUESTS_PER_WORKER):
        rows = _rows(worker, r)
        store.forget(X[rows], y[rows], request_id=f"w{worker}-{r}")


def _joblib_worker(path, X, y, worker, barrier):
    barrier.wait()
    try:
        for r in range(REQUESTS_PER_WORKER):
            rows = _rows(worker, r)
            model = joblib.load(path)  # may read a file another worker is writing
            model.partial_forget(X[rows], y[rows], request_id=f"w{worker}-{r}")
            joblib.dump(model, path)
    except Exception:
        raise SystemExit(1) from None  # counted as a failed worker


def _workers_run(folder, model, X, y, n_workers, target, use_store):
    path = os.path.join(folder, "model")
    for leftover in Path(folder).glob("model*"):
        leftover.unlink()
    if use_store:
        save(model, path)
    else:
        joblib.dump(model, path)
    barrier = CTX.Barrier(n_workers)
    processes = [
        CTX.Process(target=target, args=(path, X, y, w, barrier))
        for w in range(n_workers)
    ]
    for p in processes:
        p.start()
    failed = 0
    for p in processes:
        p.join()
        failed += p.exitcode != 0
    expected = n_workers * REQUESTS_PER_WORKER
    try:
        final = load(path) if use_store else joblib.load(path)
    except Exception:  # a torn file: every request counts as lost
        return expected, expected, failed
    applied = {r.request_id for r in final.request_records_}
    return expected, expected - len(applied), failed


def workers_soak(folder, model, X, y, rng, runs, target, use_store):
    requests = lost = lossy_runs = failed = 0
    for _ in range(runs):
        n_workers = rng.randint(2, 4)
        n, k, f = _workers_run(folder, model, X, y, n_workers, target, use_store)
        requests += n
        lost += k
        lossy_runs += k > 0
        failed += f
    return requests, lost, lossy_runs, failed


# -- 2. kill -9 during saves ---------------------------------------------------------
def _save_loop(path, versions, ready, dump):
    ready.set()
    i = 0
    while True:
        dump(versions[i % 2], path)
        i += 1


def _store_save(model, path):
    save(model, path)


def kill_soak(folder, versions, rng, runs, dump, read):
    path = os.path.join(folder, "killed")
    ids = [v.erasure_state_.state_id for v in versions]
    corrupt = mid_save = 0
    for _ in range(runs):
        dump(versions[0], path)
        ready = CTX.Event()
        p = CTX.Process(target=_save_loop, args=(path, versions, ready, dump))
        p.start()
        ready.wait(30)
        time.sleep(rng.uniform(0, 0.04))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        leftovers = list(Path(folder).glob(".killed.*"))
        mid_save += bool(leftovers)
        for leftover in leftovers:
            leftover.unlink()
        try:
            loaded = read(path)
            ok = loaded.erasure_state_.state_id in ids and np.array_equal(
                loaded.coef_, versions[ids.index(loaded.erasure_state_.state_id)].coef_
            )
        except Exception:
            ok = False
        corrupt += not ok
    return corrupt, mid_save


# -- 3. kill -9 during requests ------------------------------------------------------
def _request_loop(path, X, y, ready, acks):
    store = ErasureStore(path, journal=Journal(path + ".journal", key=KEY))
    ready.set()
    for i in range(len(X) // 2 - 1):
        store.forget(X[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2], request_id=f"r{i}")
        os.write(acks, f"r{i}\n".encode())  # the acknowledgement to the client


def request_kill_soak(folder, model, X, y, rng, runs):
    path = os.path.join(folder, "served")

    def rows_for(request_id):
        i = int(request_id[1:])
        return X[2 * i : 2 * i + 2], y[2 * i : 2 * i + 2], None

    lost = twice = replayed = corrupt = acknowledged = 0
    for _ in range(runs):
        for leftover in Path(folder).glob("served*"):
            leftover.unlink()
        save(model, path)
        ready = CTX.Event()
        read_end, write_end = os.pipe()
        p = CTX.Process(target=_request_loop, args=(path, X, y, ready, write_end))
        p.start()
        os.close(write_end)
        ready.wait(30)
        time.sleep(rng.uniform(0, 0.3))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        with os.fdopen(read_end) as f:
            acked = set(f.read().split())
        acknowledged += len(acked)
        store = ErasureStore(path, journal=Journal(path + ".journal", key=KEY))
        try:
            replayed += bool(store.replay(rows_for=rows_for))
            ids = [r.request_id for r in store.load().request_records_]
        except Exception:
            corrupt += 1
            continue
        lost += len(acked - set(ids))
        twice += len(ids) - len(set(ids))
    return acknowledged, lost, twice, replayed, corrupt


def main():
    rng = random.Random(0)
    X, y = _data()
    model = ErasableLogisticRegression().fit(X, y)
    Xb, yb = make_classification(n_samples=400, n_features=150, random_state=1)
    big = ErasableLogisticRegression(max_iter=50).fit(Xb, yb)
    versions = (big, pickle.loads(pickle.dumps(big)).partial_forget(Xb[:3], yb[:3]))
    folder = tempfile.mkdtemp(prefix="bench-durability-")
    try:
        t0 = time.perf_counter()
        store_w = workers_soak(
            folder, model, X, y, rng, N_WORKER_RUNS, _store_worker, True
        )
        joblib_w = workers_soak(
            folder, model, X, y, rng, N_BASELINE_RUNS, _joblib_worker, False
        )
        t1 = time.perf_counter()
        store_k = kill_soak(folder, versions, rng, N_KILL_RUNS, _store_save, load)
        joblib_k = kill_soak(
            folder, versions, rng, N_BASELINE_KILLS, joblib.dump, joblib.load
        )
        t2 = time.perf_counter()
        requests_k = request_kill_soak(folder, model, X, y, rng, N_REQUEST_KILLS)
        t3 = time.perf_counter()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    today = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, shared"
    out = [
        f"# Durability: several workers and kill -9 ({today}, {machine})",
        "",
        "Real processes (forked), files in the temporary folder (a local disk), "
        "fsync as shipped. `ErasableLogisticRegression` on 300 × 20 "
        "(workers, requests); 400 × 150 for the saves (a file of about 370 kB, "
        "so that a kill lands inside a save).",
        "",
        "## Several workers erasing disjoint rows (2-4 processes, 2 requests each)",
        "",
        "| method | runs | requests | lost | runs with a loss | failed workers |",
        "|---|---|---|---|---|---|",
        _row("`ErasureStore.forget`", N_WORKER_RUNS, store_w),
        _row("joblib load / partial_forget / dump", N_BASELINE_RUNS, joblib_w),
        "",
        f"({t1 - t0:.0f} s.)",
        "",
        "## kill -9 at a random moment (0-40 ms) of a loop of saves",
        "",
        "| method | runs | corrupt | killed inside a save (temporary left) |",
        "|---|---|---|---|",
        f"| `persistence.save` | {N_KILL_RUNS} | {store_k[0]} | {store_k[1]} |",
        f"| `joblib.dump` over the file | {N_BASELINE_KILLS} | {joblib_k[0]} | — |",
        "",
        f"({t2 - t1:.0f} s.) *corrupt*: the file does not load, or loads as "
        "neither version.",
        "",
        "## kill -9 at a random moment (0-300 ms) of a loop of `store.forget`, "
        "then `store.replay`",
        "",
        "| runs | acknowledged requests | lost | applied twice "
        "| runs the replay repaired | corrupt |",
        "|---|---|---|---|---|---|",
        f"| {N_REQUEST_KILLS} | {requests_k[0]} | {requests_k[1]} | {requests_k[2]} "
        f"| {requests_k[3]} | {requests_k[4]} |",
        "",
        f"({t3 - t2:.0f} s.) *lost*: acknowledged (`forget` returned) but not in "
        "the records after the replay. *runs the replay repaired*: the kill fell "
        "between the journal's append and the save, and the replay re-applied the "
        "journaled request.",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out) + "\n")
    print("\n".join(out))


def _row(label, runs, counts):
    requests, lost, lossy, failed = counts
    return f"| {label} | {runs} | {requests} | {lost} | {lossy} | {failed} |"


if __name__ == "__main__":
    main()
