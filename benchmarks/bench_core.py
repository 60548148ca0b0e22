"""Speed and memory of ErasableLogisticRegression against LogisticRegression.

The issue's targets, each a ratio measured in one run on this machine, at
n = 50 000 rows, d = 1 000 features, binary:

- curvature build ≤ 0.25 × the time of ``LogisticRegression.fit`` on the same data;
- forgetting 100 rows ≥ 1 000 × faster than the refit;
- the blocked level-3 build ≥ 30 × faster than the paper's rank-1 recursion (eq. 7),
  timed on a subset of rows and extrapolated linearly (its cost is exactly linear in
  the number of rows);
- peak memory of ``fit`` ≤ 1.5 × (peak of ``LogisticRegression.fit`` + the stored
  curvature), traced with ``tracemalloc``.

Run ``python benchmarks/bench_core.py`` (about two minutes); ``--quick`` for a
small smoke run. Writes a markdown table to ``benchmarks/results/core.md``.
"""

import argparse
import copy
import datetime
import platform
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._linalg import sherman_morrison_inverse

RESULTS = Path(__file__).parent / "results" / "core.md"


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def traced_peak(function, *args, **kwargs):
    tracemalloc.start()
    tracemalloc.reset_peak()
    function(*args, **kwargs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(n, d, n_forget, n_recursion, curvature):
    X, y = make_classification(
        n_samples=n, n_features=d, n_informative=d // 10, random_state=0
    )
    X = np.ascontiguousarray(StandardScaler().fit_transform(X))
    rows = np.random.default_rng(0).choice(n, n_forget, replace=False)
    keep = np.setdiff1d(np.arange(n), rows)

    t_lr, _ = timed(LogisticRegression().fit, X, y)
    model = ErasableLogisticRegression(curvature=curvature)
    t_fit, _ = timed(model.fit, X, y)
    y_idx = np.searchsorted(model.classes_, y)
    sw = np.ones(n)
    t_build, _ = timed(copy.deepcopy(model)._fit_erasure_state, X, y_idx, sw)

    forget_times = []
    for _ in range(5):
        twin = copy.deepcopy(model)
        forget_times.append(timed(twin.partial_forget, X[rows], y[rows])[0])
    t_forget = float(np.median(forget_times))
    t_refit, _ = timed(clone(model).fit, X[keep], y[keep])

    maths = model._erasure_maths()
    sub = slice(0, n_recursion)
    G = maths.gradient_rows(X[sub], y_idx[sub], model.curvature_point_, None)
    D = np.ones(maths.n_params)
    t_sub, _ = timed(sherman_morrison_inverse, G, np.full(n_recursion, model.C), D)
    t_recursion = t_sub * n / n_recursion

    peak_lr = traced_peak(LogisticRegression().fit, X, y)
    peak_fit = traced_peak(ErasableLogisticRegression(curvature=curvature).fit, X, y)
    stored = model.curvature_inverse_.nbytes

    mb = 2**20
    rows_out = [
        ("`LogisticRegression.fit`", f"{t_lr:.2f} s", "", ""),
        ("`ErasableLogisticRegression.fit`", f"{t_fit:.2f} s", "", ""),
        (
            "curvature build / `LogisticRegression.fit`",
            f"{t_build:.2f} s / {t_lr:.2f} s = **{t_build / t_lr:.2f}**",
            "≤ 0.25",
            "yes" if t_build / t_lr <= 0.25 else "no",
        ),
        (
            f"refit / `partial_forget` of {n_forget} rows",
            f"{t_refit:.2f} s / {t_forget * 1e3:.1f} ms "
            f"= **{t_refit / t_forget:.0f}×**",
            "≥ 1000×",
            "yes" if t_refit / t_forget >= 1000 else "no",
        ),
        (
            "rank-1 recursion (eq. 7) / blocked build",
            f"{t_recursion:.0f} s (from {n_recursion} rows) / {t_build:.2f} s "
            f"= **{t_recursion / t_build:.0f}×**",
            "≥ 30×",
            "yes" if t_recursion / t_build >= 30 else "no",
        ),
        (
            "peak memory of `fit` / (`LogisticRegression.fit` + stored curvature)",
            f"{peak_fit / mb:.1f} MiB / ({peak_lr / mb:.1f} + {stored / mb:.1f}) MiB "
            f"= **{peak_fit / (peak_lr + stored):.2f}**",
            "≤ 1.5",
            "yes" if peak_fit / (peak_lr + stored) <= 1.5 else "no",
        ),
    ]
    header = (
        f"Run {datetime.date.today()} on {platform.machine()}, "
        f"{len(__import__('os').sched_getaffinity(0))} cores; n = {n}, d = {d}, "
        f'binary, curvature="{curvature}", full block '
        f"({maths.n_params}² coordinates), lbfgs defaults.\n\n"
    )
    table = "| measure | value | target | met |\n|---|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} | {e} |" for a, b, c, e in rows_out
    )
    return header + table + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--curvature", default="fisher", choices=["fisher", "hessian"])
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.quick:
        text = main(
            n=5_000, d=100, n_forget=100, n_recursion=500, curvature=args.curvature
        )
    else:
        text = main(
            n=50_000, d=1_000, n_forget=100, n_recursion=2_000, curvature=args.curvature
        )
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(text)
    print(text)
