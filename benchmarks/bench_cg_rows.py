"""Requests with ``curvature_structure="cg-rows"`` against their linear algebra.

For each workload of issue 11 (the 6 000 × 784 images, 10 classes, half a class
forgotten; the docstring corpus, 2 and 6 classes, ~28 000 TF-IDF features), in
one run with one BLAS thread:

- the refit on the remaining rows (plain ``LogisticRegression.fit``);
- one product ``M v`` with the stored curvature, against its floor written
  plainly in numpy/scipy: ``Z = X̃ @ Xv`` then ``X̃ᵀ @ (V ⋅ Z)`` (the mixing by
  the per-row ``V_i`` included), two passes over ``X̃``;
- the request (1 row: median of 5 in sequence on one copy; k rows: median of 3
  fresh copies), the CG products it made, and the request against the refit
  and against its products at the floor.

Run ``OMP_NUM_THREADS=1 python benchmarks/bench_cg_rows.py`` (about 1 minute);
``--problems images`` or ``text6`` for one workload. Writes
``benchmarks/results/cg_rows.md``.
"""

import argparse
import copy
import datetime
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.datasets import load_docstring_corpus

sys.path.insert(0, str(Path(__file__).parent))
from bench_latency import median_time  # noqa: E402
from bench_scalable import count_products, make_image_like  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "cg_rows.md"


def floor_product(curvature):
    """``M v``'s data term written plainly: two passes over ``X̃`` (numpy/scipy),
    with the full ``V_i`` formed once outside the timing."""
    rows = curvature.rows
    c, width = curvature.n_outputs, curvature.width
    full = np.zeros((rows.shape[0], c, c), dtype=curvature.dtype)
    a, b = np.array(curvature.pairs).T
    full[:, a, b] = curvature.weights
    full[:, b, a] = curvature.weights
    x = np.random.default_rng(0).standard_normal((width, c)).astype(curvature.dtype)
    transposed = rows.T

    def product():
        Z = rows @ x
        U = np.einsum("iab,ib->ia", full, Z)
        return transposed @ U

    return product


def workload(name, X, y, C, forget, singles, repeats):
    keep = np.setdiff1d(np.arange(len(y)), forget)
    refit = median_time(lambda: LogisticRegression(C=C).fit(X[keep], y[keep]), 2)
    start = time.perf_counter()
    model = ErasableLogisticRegression(
        C=C, curvature="hessian", curvature_structure="cg-rows"
    ).fit(X, y)
    build = time.perf_counter() - start
    curvature = model.curvature_inverse_
    vector = np.random.default_rng(1).standard_normal(curvature.n_params)
    vector = vector.astype(curvature.dtype)
    product = median_time(lambda: curvature.matvec(vector), 20)
    floor = median_time(floor_product(curvature), 20)

    def request(rows, work):
        with count_products(curvature) as products:
            start = time.perf_counter()
            work.partial_forget(X[rows], y[rows])
            return time.perf_counter() - start, products.count

    many = [request(forget, copy.deepcopy(model)) for _ in range(repeats)]
    work = copy.deepcopy(model)
    one = [request([i], work) for i in singles]
    rows = []
    for label, runs in ((f"{len(forget)} rows", many), ("1 row", one)):
        seconds = float(np.median([t for t, _ in runs]))
        count = int(np.median([n for _, n in runs]))
        rows.append(
            f"| {name} | {label} | {refit * 1e3:.0f} ms | {build:.2f} s | "
            f"{product * 1e3:.2f} ms | {floor * 1e3:.2f} ms "
            f"({product / floor:.2f}×) | {seconds * 1e3:.1f} ms "
            f"(**{seconds / refit:.3f}×**) | {count} | "
            f"{seconds / (count * floor):.2f}× |"
        )
        print(rows[-1], flush=True)
    return rows


def images(rng):
    X, y = make_image_like(6000)
    forget = rng.choice(np.flatnonzero(y == 3), np.sum(y == 3) // 2, replace=False)
    singles = np.setdiff1d(np.arange(len(y)), forget)[-5:]
    name = f"images, {X.shape[0]} × {X.shape[1]}, 10 classes"
    return workload(name, X, y, 1.0, forget, singles, 3)


def text(rng, n_classes):
    X, y = load_docstring_corpus(n_classes=n_classes)
    forget = rng.choice(len(y), 100, replace=False)
    singles = np.setdiff1d(np.arange(len(y)), forget)[-5:]
    name = (
        f"docstrings, {n_classes} classes, {X.shape[1]} features, "
        f"{sp.csr_matrix(X).nnz} non-zeros"
    )
    return workload(name, X, y, 10.0, forget, singles, 3)


def main(problems=("images", "text6", "text2"), output=RESULTS):
    warnings.simplefilter("ignore", ConvergenceWarning)
    started = time.perf_counter()
    table = []
    with threadpool_limits(limits=1, user_api="blas"):
        for problem in problems:
            rng = np.random.default_rng(0)
            table += images(rng) if problem == "images" else text(rng, int(problem[4:]))
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"# cg-rows requests against their linear algebra: {datetime.date.today()}, "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at "
        f"the end (shared, noisy), one BLAS thread (OMP_NUM_THREADS={threads})",
        "",
        '`curvature_structure="cg-rows"`, Hessian curvature, `leave_out=True`, '
        "CG to 1e-2. Refit: plain `LogisticRegression.fit` on the remaining rows "
        "(median of 2). Product: one `M v` with the stored curvature (median of "
        "20) against the floor, `X̃ @ x`, `V_i`-mixing, `X̃ᵀ @ U` written plainly "
        "in numpy/scipy. Request: k rows median of 3 fresh copies, 1 row median "
        "of 5 in sequence; × refit, and against its CG products at the floor "
        "(1.00× = nothing but the products, each at the floor).",
        "",
        "| problem | request | refit | erasable fit | one product | its floor "
        "(product / floor) | request (× refit) | CG products | request / "
        "(products × floor) |",
        "|---|---|---|---|---|---|---|---|---|",
        *table,
        "",
        f"Total time {time.perf_counter() - started:.0f} s.",
    ]
    Path(output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--problems",
        nargs="+",
        default=["images", "text6", "text2"],
        choices=["images", "text6", "text2"],
    )
    parser.add_argument("--output", default=RESULTS, type=Path)
    main(**vars(parser.parse_args()))
