"""A million rows (issue 26, parts 1 and 2): the erasure state's build against one
SYRK of the same data, ``fit`` against ``LogisticRegression.fit``, request latency
and peak memory.

Cases, each in its own process (so that its peak RSS is its own):

1. **dense**: n = 1 000 000, d = 200, float32, binary.
2. **sparse**: n = 1 000 000 × 5 000, ~20 stored entries per row (Zipf columns,
   TF-IDF-like positive values, rows of unit norm), float32, binary.
3. **memmap**: n = 10 000 000, d = 200 float32 read from an ``np.memmap`` on /tmp
   (8 GB; the build reads it in chunks): fit and requests.

The floor is one SYRK of the whole ``X`` in float32 (the state's dtype): numpy's
``X.T @ X`` (OpenBLAS ``ssyrk``, faster here than scipy's own OpenBLAS build),
timed in the same process (for sparse ``X``: scipy's ``X.T @ X``). Every case runs
with one BLAS thread by default (``--threads``): the 2 cores are shared with other
workers, and oversubscribed OpenBLAS threads made one SYRK 2–40× slower than one
thread while this was written (5–45×). *build*
is ``_fit_erasure_state`` (everything ``fit`` does after the solver: curvature,
gradient sums, inverse, certificate), *curvature* the fused curvature and
gradient sums alone, *+ Gram* the same pass with the certificate's Gram (what
``base.py`` would call with ``gram_weights``). *refit* is ``LogisticRegression.fit``
on all rows (a refit without 100 rows costs the same). Peak RSS is the process's
high-water mark (VmHWM) during each fit, reset before it, the data and the
process's baseline included (a memmap's pages read count too); *X* and *state*
are the data's bytes and the stored inverse curvature's.

Run ``python benchmarks/bench_million.py`` (about 10 minutes on 2 shared cores;
``--quick`` for a smoke run at 1/20 of the sizes, ``--big-n N`` to change the
memmap case's rows); writes ``benchmarks/results/million.md``.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

RESULTS = Path(__file__).parent / "results" / "million.md"
MEMMAP = Path("/tmp/ssse_bench_million_X.f32")


def _rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _reset_peak():
    """Start the process's peak RSS (VmHWM) afresh (Linux ≥ 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # pragma: no cover - not Linux
        pass


def _peak():
    """The process's peak RSS since the last :func:`_reset_peak`, in bytes."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):  # pragma: no cover
        return _rss()


def _timed(f, repeat=1):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def _dense(n, d, seed=0, out=None):
    """Standard normal float32 rows and labels of a noisy linear model, made in
    chunks (into ``out``, a memmap, when given)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d) / np.sqrt(d)
    X = np.empty((n, d), np.float32) if out is None else out
    y = np.empty(n, np.intp)
    step = 500_000
    for a in range(0, n, step):
        b = min(a + step, n)
        X[a:b] = rng.standard_normal((b - a, d), dtype=np.float32)
        y[a:b] = (X[a:b] @ w + 0.5 * rng.standard_normal(b - a)) > 0
    return X, y


def _sparse(n, m, nnz, seed=0):
    """TF-IDF-like CSR: ``nnz`` Zipf-distributed columns a row, lognormal values,
    rows of unit norm; labels of a sparse linear model."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, m + 1) ** 1.1
    columns = rng.choice(m, size=n * nnz, p=p / p.sum()).astype(np.int32)
    values = rng.lognormal(0.0, 0.5, size=n * nnz).astype(np.float32)
    indptr = np.arange(0, n * nnz + 1, nnz, dtype=np.int64)
    X = sp.csr_matrix((values, columns, indptr), shape=(n, m))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-12)) @ X, dtype=np.float32)
    w = rng.standard_normal(m).astype(np.float32)
    z = X @ w
    y = (z + 0.3 * rng.standard_normal(n) > np.median(z)).astype(np.intp)
    return X, y


def _floors(X, threads):
    """One SYRK of the whole X (float32) in the case's threading, and with all
    of the machine's BLAS threads."""
    if sp.issparse(X):
        product = _timed(lambda: X.T @ X)  # scipy's SpGEMM (one thread)
        return {"floor": product, "floor_all": product}
    repeat = 1 if isinstance(X, np.memmap) else 2
    floor = _timed(lambda: X.T @ X, repeat=repeat)
    with threadpool_limits(os.cpu_count(), user_api="blas"):
        floor_all = _timed(lambda: X.T @ X, repeat=repeat)
    return {"floor": floor, "floor_all": floor_all}


def _builds(model, X, y):
    """The state build as fit runs it, and the fused curvature pass alone."""
    from sklearn_ssse._logistic_maths import LogisticMaths
    from sklearn_ssse.certificate import weighted_gram

    yi = np.searchsorted(model.classes_, y)
    sw = np.ones(X.shape[0], dtype=X.dtype)
    maths = LogisticMaths(X.shape[1], 2, True)
    theta = np.hstack([model.coef_[0], model.intercept_]).astype(X.dtype)
    bounds = [(0, maths.n_params)]
    args = (X, yi, sw, sw, theta, np.ones(2, bool), "hessian", bounds, 2)
    out = {}
    out["build"] = _timed(lambda: model._fit_erasure_state(X, yi, sw))
    if not isinstance(X, np.memmap):
        out["curvature"] = _timed(
            lambda: maths.curvature_blocks_and_gradient_sums(*args), repeat=2
        )
        out["gram"] = _timed(
            lambda: maths.curvature_blocks_and_gradient_sums(
                *args, gram_weights=np.full(X.shape[0], model.C)
            )
        )
    if not isinstance(X, np.memmap) and not sp.issparse(X):
        # (sparse X: a dense float64 Gram over densified chunks, 65 s at 100 000
        # rows: the state build above includes it once)
        out["certificate_gram"] = _timed(
            lambda: weighted_gram(maths, X, np.full(X.shape[0], model.C))
        )
    return out


def _requests(model, X, y, n_single=20, n_batch=3, refit=True):
    rng = np.random.default_rng(1)
    rows = rng.permutation(X.shape[0])[: n_single + 100 * n_batch]
    rows.sort()  # reading a memmap: in order
    single, batch = rows[:n_single], rows[n_single:].reshape(n_batch, 100)
    one = []
    for i in single:
        start = time.perf_counter()
        model.partial_forget(X[i : i + 1], y[i : i + 1])
        one.append(time.perf_counter() - start)
    hundred = []
    for idx in batch:
        Xs, ys = X[idx], y[idx]
        start = time.perf_counter()
        model.partial_forget(Xs, ys)
        hundred.append(time.perf_counter() - start)
    return {
        "one_median": float(np.median(one)),
        "one_max": float(np.max(one)),
        "hundred_median": float(np.median(hundred)),
    }


def run_case(case, scale, big_n, threads, sparse_n=1_000_000):
    with threadpool_limits(threads, user_api="blas"):
        result = _run_case(case, scale, big_n, sparse_n)
    result["threads"] = threads
    return result


def _run_case(case, scale, big_n, sparse_n):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from sklearn_ssse import ErasableLogisticRegression

    warnings.simplefilter("ignore", ConvergenceWarning)
    result = {"case": case, "load": os.getloadavg()[0]}
    if case == "dense":
        X, y = _dense(int(1_000_000 * scale), 200)
    elif case == "sparse":
        X, y = _sparse(int(sparse_n * scale), 5_000, 20)
    else:
        n = int(big_n * scale)
        X = np.lib.format.open_memmap(
            str(MEMMAP), mode="w+", dtype=np.float32, shape=(n, 200)
        )
        X, y = _dense(n, 200, out=X)
        X.flush()
        del X
        X = np.load(str(MEMMAP), mmap_mode="r")
    result["n"], result["d"] = X.shape
    result["X_bytes"] = (
        X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        if sp.issparse(X)
        else X.nbytes
    )
    result["rss_data"] = _rss()
    result.update(_floors(X, None))
    if case != "memmap" or scale < 1:
        plain = LogisticRegression()
        _reset_peak()
        result["plain_fit"] = _timed(lambda: plain.fit(X, y))
        result["rss_plain"] = _peak()
    model = ErasableLogisticRegression()
    _reset_peak()
    result["fit"] = _timed(lambda: model.fit(X, y))
    result["rss_fit"] = _peak()
    result["structure"] = type(model.erasure_state_.curvature).__name__
    result["state_bytes"] = int(model.curvature_inverse_.nbytes)
    result.update(_builds(model, X, y))
    result.update(_requests(model, X, y))
    result["rss_peak"] = _rss()
    return result


def _gb(value):
    return f"{value / 2**30:.2f} GiB"


def _table(results, machine, today):
    lines = [
        f"# A million rows (issue 26) ({today}, {machine})",
        "",
        __doc__.split("\n\n", 1)[1].split("Run ``")[0].strip(),
        "",
        "| case | structure | floor: one SYRK (all BLAS threads) | state build ×"
        " floor | curvature × floor | curvature + Gram × floor | certificate's"
        " Gram today × floor | LogisticRegression.fit | fit (× plain) | 1 row "
        "(median / max) | 100 rows (× refit) | peak RSS: plain fit / fit (X, "
        "state) | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        floor = r["floor"]

        def ratio(key, r=r, floor=floor):
            return f"{r[key] / floor:.2f}" if key in r else "–"

        plain = r.get("plain_fit")
        fit = f"{r['fit']:.1f} s" + (f" ({r['fit'] / plain:.2f}×)" if plain else "")
        refit = plain or r["fit"]
        lines.append(
            f"| {r['case']} {r['n']:,} × {r['d']:,} | {r['structure']} | "
            f"{floor:.2f} s ({r['floor_all']:.2f} s) | {ratio('build')} | "
            f"{ratio('curvature')} | {ratio('gram')} | "
            f"{ratio('certificate_gram')} | "
            + (f"{plain:.1f} s" if plain else "not run")
            + f" | {fit} | {1e3 * r['one_median']:.1f} / {1e3 * r['one_max']:.1f} ms"
            f" | {1e3 * r['hundred_median']:.1f} ms "
            f"({r['hundred_median'] / refit:.1e}) | "
            + (_gb(r["rss_plain"]) if "rss_plain" in r else "–")
            + f" / {_gb(r['rss_fit'])} "
            f"({_gb(r['X_bytes'])}, {r['state_bytes'] / 2**20:.1f} MiB) | "
            f"{r['load']:.1f} |"
        )
    threads = results[0]["threads"] if results else None
    lines += [
        "",
        f"BLAS threads: {threads or 'all'} in every case (the floor in brackets"
        " with all of them, in the same process). *state build*: everything fit"
        " does after the solver; *curvature*: the Hessian block and the class"
        " sums in one pass; *+ Gram*: the same pass with the certificate's Gram;"
        " *certificate's Gram today*: `certificate.weighted_gram` (float64), which"
        " the state build runs as a second pass. *load*: the 1-minute load"
        " average when the case started (2 cores, shared). The memmap case's"
        " refit ratio divides by its own fit when the plain fit is not run.",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--case")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--big-n", type=int, default=10_000_000)
    parser.add_argument("--cases", default="dense,sparse,memmap")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sparse-n", type=int, default=1_000_000)
    args = parser.parse_args()
    scale = 0.05 if args.quick else 1.0
    if args.case:
        threads = args.threads or None
        result = run_case(args.case, scale, args.big_n, threads, args.sparse_n)
        print(json.dumps(result))
        return
    results = []
    for case in args.cases.split(","):
        if case == "memmap":
            free = shutil.disk_usage("/tmp").free
            need = args.big_n * scale * 200 * 4
            if free < 2 * need:
                print(f"memmap: {need / 2**30:.1f} GiB needed, /tmp has too little")
                continue
        command = [sys.executable, __file__, "--case", case, "--big-n", str(args.big_n)]
        command += ["--threads", str(args.threads), "--sparse-n", str(args.sparse_n)]
        command += ["--quick"] if args.quick else []
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-3000:])
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(case, f"{time.perf_counter() - start:.0f} s", results[-1], flush=True)
        MEMMAP.unlink(missing_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, shared"
    table = _table(results, machine, datetime.date.today().isoformat())
    if not args.quick:
        RESULTS.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
