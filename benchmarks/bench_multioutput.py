"""Benchmark of ErasableMultiOutputClassifier at a paper-like shape.

The paper's first experiment (CelebA) is a linear multi-attribute classifier: 40
binary attributes on 4 096 image features, no intercept. This script runs the same
kind of model, scaled to a small machine (default: 40 outputs × 512 features, 10 000
rows), and measures

- build: ``fit`` of the erasable model (solver + the curvature of every output);
- forget: latency of one ``partial_forget`` request of ``k`` rows (median over
  several successive requests);
- memory: the stored curvature (``L · m² · itemsize`` without intercept);
- refit: retraining the same model on the remaining rows, and retraining a plain
  ``MultiOutputClassifier(LogisticRegression)`` (no curvature) with the same
  hyper-parameters;
- distance ratio: median over outputs of ``‖θ̂ − θ₋S‖ / ‖θ* − θ₋S‖`` for the first
  request (0: the erased model equals the refit, 1: no better than not erasing).

The data are dense Gaussian features with attributes drawn from a random logistic
model, their prevalences spread from 2 % to 50 % (CelebA has rare and common
attributes). One row per curvature dtype (float64, and float32 by fitting on
float32 ``X``).

It prints a markdown table and writes it to ``benchmarks/results/multioutput.md``::

    python benchmarks/bench_multioutput.py            # the full shape
    python benchmarks/bench_multioutput.py --quick    # a reduced shape, seconds
"""

import argparse
import datetime
import os
import platform
import time
from pathlib import Path
from statistics import median

import numpy as np
import sklearn
from scipy.special import expit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from threadpoolctl import threadpool_limits

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier

RESULTS = Path(__file__).resolve().parent / "results" / "multioutput.md"


def make_attributes(n_samples, n_features, n_outputs, seed=0):
    """Dense features and ``n_outputs`` binary attributes of varied prevalence."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    W = rng.standard_normal((n_features, n_outputs)) * (2.0 / np.sqrt(n_features))
    scores = X @ W
    prevalence = np.linspace(0.02, 0.5, n_outputs)
    ranks = np.floor((1.0 - prevalence) * (n_samples - 1)).astype(int)
    offsets = np.sort(scores, axis=0)[ranks, np.arange(n_outputs)]
    Y = (rng.random(scores.shape) < expit(2.0 * (scores - offsets))).astype(np.int64)
    return X, Y


def _params(model):
    return np.vstack([est.coef_.ravel() for est in model.estimators_])


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def run(X, Y, dtype, args, rng):
    base = ErasableLogisticRegression(
        fit_intercept=False, curvature=args.curvature, max_iter=args.max_iter
    )
    model = ErasableMultiOutputClassifier(base, n_jobs=args.n_jobs)
    Xd = X.astype(dtype)
    model, build = _timed(lambda: model.fit(Xd, Y))
    memory = sum(est.curvature_inverse_.nbytes for est in model.estimators_)
    n_outputs, n_features = Y.shape[1], X.shape[1]
    assert memory == n_outputs * n_features**2 * np.dtype(dtype).itemsize

    # Successive requests of k distinct rows; the first is compared with a refit.
    order = rng.permutation(len(X))
    requests = [
        order[i * args.n_forget : (i + 1) * args.n_forget] for i in range(args.repeats)
    ]
    before = _params(model)
    latencies = []
    for i, rows in enumerate(requests):
        _, seconds = _timed(lambda rows=rows: model.partial_forget(Xd[rows], Y[rows]))
        latencies.append(seconds)
        if i == 0:
            after = _params(model)

    keep = np.setdiff1d(np.arange(len(X)), requests[0])
    refit, refit_seconds = _timed(lambda: clone(model).fit(Xd[keep], Y[keep]))
    plain = MultiOutputClassifier(
        LogisticRegression(fit_intercept=False, max_iter=args.max_iter),
        n_jobs=args.n_jobs,
    )
    _, plain_seconds = _timed(lambda: plain.fit(Xd[keep], Y[keep]))
    target = _params(refit)
    ratio = median(
        np.linalg.norm(after - target, axis=1) / np.linalg.norm(before - target, axis=1)
    )
    return {
        "dtype": np.dtype(dtype).name,
        "build": build,
        "forget": median(latencies),
        "memory": memory,
        "refit": refit_seconds,
        "plain": plain_seconds,
        "ratio": ratio,
    }


def _seconds(value):
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"


def table(rows, args, shape):
    n_samples, n_features, n_outputs = shape
    today = datetime.date.today().isoformat()
    lines = [
        f"## Multi-output erasure: {n_outputs} outputs × {n_features} features, "
        f"{n_samples} rows ({today})",
        "",
        f"`ErasableMultiOutputClassifier(ErasableLogisticRegression(fit_intercept="
        f'False, curvature="{args.curvature}"), n_jobs={args.n_jobs})`; requests of '
        f"{args.n_forget} rows (latency: median of {args.repeats} successive "
        f"requests), {args.blas_threads} BLAS thread(s) per job. Machine: "
        f"{os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, NumPy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}."
        + (" Reduced shape (`--quick`)." if args.quick else ""),
        "",
        "| curvature dtype | build (fit) | forget "
        f"{args.n_forget} rows | curvature memory (L·m²·itemsize) | refit, same "
        "model | refit, LogisticRegression only | speed-up vs refit | distance "
        "ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {_seconds(r['build'])} | {_seconds(r['forget'])} | "
            f"{r['memory'] / 2**20:.1f} MiB | {_seconds(r['refit'])} | "
            f"{_seconds(r['plain'])} | {r['plain'] / r['forget']:.0f}× | "
            f"{r['ratio']:.3f} |"
        )
    lines += [
        "",
        "Speed-up: plain refit time over forget latency. Distance ratio: median over "
        "outputs of ‖θ̂ − θ₋S‖ / ‖θ* − θ₋S‖ for the first request (0 = the refit; "
        "the Fisher at its untuned `forget_scale=1`).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-outputs", type=int, default=40)
    parser.add_argument("--n-features", type=int, default=512)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--n-forget", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=500)
    parser.add_argument("--curvature", choices=["fisher", "hessian"], default="fisher")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="BLAS threads in this process (default: cores // n_jobs, the budget "
        "joblib gives each worker process in fit, so that the threads of "
        "partial_forget do not oversubscribe the cores)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="reduced shape (8 outputs × 64 features, 2 000 rows) to check the script",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.blas_threads is None:
        args.blas_threads = max(1, (os.cpu_count() or 1) // max(1, args.n_jobs))
    if args.quick:
        args.n_outputs, args.n_features, args.n_samples = 8, 64, 2000
        args.n_forget, args.repeats = 50, 3

    shape = (args.n_samples, args.n_features, args.n_outputs)
    X, Y = make_attributes(*shape)
    # Start joblib's worker pool outside the timings.
    small = slice(0, 1000)
    ErasableMultiOutputClassifier(
        ErasableLogisticRegression(fit_intercept=False), n_jobs=args.n_jobs
    ).fit(X[small], Y[small])
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        rows = [run(X, Y, dtype, args, rng) for dtype in (np.float64, np.float32)]
    text = table(rows, args, shape)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
