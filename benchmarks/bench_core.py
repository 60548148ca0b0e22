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

Each configuration of the curvature is measured (the exact full-block Fisher is
the default; blocks and mini-batches are the paper's cheaper approximations).

Run ``python benchmarks/bench_core.py`` (a few minutes); ``--quick`` for a small
smoke run. Writes a markdown table to ``benchmarks/results/core.md``.
"""

import argparse
import copy
import datetime
import os
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


CONFIGS = {
    "Fisher, full block (default)": {},
    "Hessian, full block": {"curvature": "hessian"},
    "Fisher, blocks of 128": {"block_size": 128},
    "Fisher, mini-batches of 10": {"fisher_batch_size": 10, "random_state": 0},
}


def measure(params, X, y, rows, keep, t_lr, peak_lr):
    """Build, forget, refit and memory figures of one configuration."""
    model = ErasableLogisticRegression(**params).fit(X, y)
    y_idx = np.searchsorted(model.classes_, y)
    t_build, _ = timed(
        copy.deepcopy(model)._fit_erasure_state, X, y_idx, np.ones(len(y))
    )
    forget_times = []
    for _ in range(5):
        twin = copy.deepcopy(model)
        forget_times.append(timed(twin.partial_forget, X[rows], y[rows])[0])
    t_forget = float(np.median(forget_times))
    t_refit, _ = timed(clone(model).fit, X[keep], y[keep])
    peak = traced_peak(ErasableLogisticRegression(**params).fit, X, y)
    stored = model.curvature_inverse_.nbytes
    return model, dict(
        build=t_build,
        build_ratio=t_build / t_lr,
        forget=t_forget,
        refit=t_refit,
        speedup=t_refit / t_forget,
        peak=peak,
        stored=stored,
        memory_ratio=peak / (peak_lr + stored),
    )


def regime_table(title, X, y, rows, keep, configs):
    """Markdown rows of every configuration on one data set; also the default."""
    t_lr, lr = timed(LogisticRegression().fit, X, y)
    peak_lr = traced_peak(LogisticRegression().fit, X, y)
    mb = 2**20
    lines = [
        f"**{title}**: `LogisticRegression()` defaults stop after "
        f"{int(lr.n_iter_[0])} lbfgs iterations; fit {t_lr:.2f} s, traced peak "
        f"{peak_lr / mb:.1f} MiB.",
        "",
        "| curvature | build | build / LR fit (target ≤ 0.25) | forget | "
        "refit / forget (target ≥ 1000) | peak fit memory / (LR fit + stored) "
        "(target ≤ 1.5) |",
        "|---|---|---|---|---|---|",
    ]
    default = None
    for name in configs:
        model, r = measure(CONFIGS[name], X, y, rows, keep, t_lr, peak_lr)
        default = default or model
        lines.append(
            f"| {name} | {r['build']:.2f} s | **{r['build_ratio']:.2f}** | "
            f"{r['forget'] * 1e3:.1f} ms | **{r['speedup']:.0f}×** "
            f"({r['refit']:.2f} s) | **{r['memory_ratio']:.2f}** "
            f"({r['peak'] / mb:.1f} / ({peak_lr / mb:.1f} + {r['stored'] / mb:.1f}) "
            "MiB) |"
        )
        if name == "Fisher, full block (default)":
            default_build = r["build"]
    return lines, default, default_build


def main(n, d, n_forget, n_recursion):
    X, y = make_classification(
        n_samples=n, n_features=d, n_informative=d // 10, random_state=0
    )
    X = np.ascontiguousarray(StandardScaler().fit_transform(X))
    rows = np.random.default_rng(0).choice(n, n_forget, replace=False)
    keep = np.setdiff1d(np.arange(n), rows)
    # The same data with features on scales from 0.01 to 100, as unscaled real
    # features often are: the solver needs many more iterations.
    X_raw = X * np.logspace(-2, 2, d)

    lines = [
        f"Run {datetime.date.today()} on {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores. n = {n}, d = {d}, binary "
        "`make_classification`. Refit = `clone(model).fit` on the remaining rows "
        f"(the fit plus the curvature build). Forget = median of 5 requests of "
        f"{n_forget} rows.",
        "",
    ]
    table, default, t_blocked = regime_table(
        "Standardised features", X, y, rows, keep, list(CONFIGS)
    )
    lines += table + [""]
    table, _, _ = regime_table(
        "Raw-scale features (scales 0.01 to 100)",
        X_raw,
        y,
        rows,
        keep,
        ["Fisher, full block (default)", "Fisher, mini-batches of 10"],
    )
    lines += table

    maths = default._erasure_maths()
    sub = slice(0, n_recursion)
    y_idx = np.searchsorted(default.classes_, y)
    G = maths.gradient_rows(X[sub], y_idx[sub], default.curvature_point_, None)
    D = np.ones(maths.n_params)
    t_sub, _ = timed(sherman_morrison_inverse, G, np.full(n_recursion, 1.0), D)
    t_recursion = t_sub * n / n_recursion
    lines += [
        "",
        f"Rank-1 recursion (paper eq. 7) for the full Fisher: {t_recursion:.0f} s "
        f"(timed on {n_recursion} rows, × {n / n_recursion:.0f}) against "
        f"{t_blocked:.2f} s blocked: **{t_recursion / t_blocked:.0f}×** "
        "(target ≥ 30×).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.quick:
        text = main(n=5_000, d=100, n_forget=100, n_recursion=500)
    else:
        text = main(n=50_000, d=1_000, n_forget=100, n_recursion=2_000)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(text)
    print(text)
