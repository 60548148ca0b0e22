"""Sparse text: the erasure state's build, memory and requests against a refit.

The problem is :func:`sklearn_ssse.datasets.load_docstring_corpus` (TF-IDF of the
standard library's docstrings: reproducible, no download), at three sizes. For
each curvature representation (one entry of ``REPRESENTATIONS``) that the memory
budget lets ``fit`` build, it measures, in one run on this machine:

- ``LogisticRegression.fit`` (plain) and ``ErasableLogisticRegression.fit``
  (the same solver plus the erasure state) times, and the traced peak memory of
  the erasable fit (``tracemalloc``: numpy's and scipy's arrays);
- the stored curvature's bytes;
- the latency of a 1-row request (median of 10, or 5) and of a 100-row request (median
  of up to 3), against a plain refit on the remaining rows;
- on the problem where the dense block fits, the relative parameter distance to
  a tight refit of a 1 % deletion, ``‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖``, with the
  dense block and the diagonal as the two references.

The issue's targets: erasable fit ≤ 3 × plain fit + 2 s; stored ≤ 300 MB;
1 row ≤ 10 ms; 100 rows ≤ 0.05 × refit; distance better than halfway between the
diagonal's and the dense block's.

Representations that would not fit are not built: their estimate (from
``sklearn_ssse._memory``, before any work) is reported instead, with the time
``fit`` takes to refuse them.

Run ``python benchmarks/bench_text.py`` (a few minutes; ``--quick`` for a small
smoke run). Writes ``benchmarks/results/text.md``.
"""

import argparse
import copy
import datetime
import os
import platform
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._memory import (
    CurvatureMemoryError,
    check_memory_budget,
    format_bytes,
)
from sklearn_ssse.datasets import load_docstring_corpus
from sklearn_ssse.exceptions import CostlyErasureWarning, ErasureError

RESULTS = Path(__file__).parent / "results" / "text.md"
# Stop starting new measurements after this long (the run stays a few minutes).
TIME_LIMIT_S = 240


@dataclass
class Representation:
    """One way of storing the curvature: a name and the estimator parameters."""

    name: str
    params: dict
    dtype: type = np.float32
    problems: tuple = ()  # names of the problems to run it on (empty: all)
    fidelity_only: bool = False  # a reference of the distance column only
    estimate_only: bool = False  # report the estimate, build nothing (too slow)
    extra: dict = field(default_factory=dict)


PROBLEMS = {
    "binary, ~7 700 features": {"n_classes": 2, "min_df": 5},
    "binary, ~28 000 features": {"n_classes": 2},
    "6 classes, ~28 000 features": {"n_classes": 6},
}
QUICK_PROBLEMS = {
    "binary, ~4 600 features": {"n_classes": 2, "min_df": 8},
    "6 classes, ~4 600 features": {"n_classes": 6, "min_df": 8},
}

SMALL = ("binary, ~7 700 features", "binary, ~4 600 features")
WIDE_MULTINOMIAL = ("6 classes, ~28 000 features", "6 classes, ~4 600 features")
BLOCKS = {"curvature_structure": "blocks"}
REPRESENTATIONS = [
    # Cheapest first: the time limit cuts the most expensive.
    Representation("default (auto), float32", {}),
    Representation(
        "diagonal, float32",
        {**BLOCKS, "block_size": 1},
        problems=SMALL,
        fidelity_only=True,
    ),
    Representation("blocks of 1 024, float32", {**BLOCKS, "block_size": 1024}),
    Representation(
        "dense block, float32", {**BLOCKS, "block_size": None}, problems=SMALL
    ),
    # float64: the estimate only (its inversion alone is d³ flops, twice float32's
    # time), and the refusal, before the solver, where it cannot fit.
    Representation(
        "dense block, float64",
        {**BLOCKS, "block_size": None},
        np.float64,
        problems=SMALL + WIDE_MULTINOMIAL,
        estimate_only=True,
    ),
    Representation(
        "blocks of 256, float32",
        {**BLOCKS, "block_size": 256},
        problems=WIDE_MULTINOMIAL,
    ),
]


def scalable_representations():
    """Entries for the options of ``curvature_structure``, where it exists."""
    constraints = ErasableLogisticRegression._parameter_constraints
    if "curvature_structure" not in constraints:
        return []
    options = set()
    for constraint in constraints["curvature_structure"]:
        options |= set(getattr(constraint, "options", ()))
    return [
        Representation(
            f"curvature_structure={option!r}, float32",
            {"curvature_structure": option, "block_size": None},
        )
        # cheapest first: the time limit cuts the most expensive
        for option in sorted(
            options - {"auto", "blocks"}, key=lambda o: _COST_ORDER.get(o, 9)
        )
    ]


_COST_ORDER = {"cg-rows": 0, "cg-class": 1, "cg": 2}


def distinct_rows(X, y):
    """The corpus without repeated documents (a request may name a row once)."""
    keys = [
        X.indices[a:b].tobytes() + X.data[a:b].tobytes()
        for a, b in zip(X.indptr[:-1], X.indptr[1:])
    ]
    _, first = np.unique(np.array(keys, dtype=object), return_index=True)
    first = np.sort(first)
    return X[first], y[first]


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def flat(model):
    return np.hstack([model.coef_, model.intercept_[:, None]]).ravel()


def traced(function, *args, **kwargs):
    """``(seconds, peak traced bytes, result)`` of one call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        seconds, result = timed(function, *args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak, result


def requests(model, X, y, rng, size, repeats, remaining):
    """Median seconds of ``repeats`` requests of ``size`` rows each, drawn from
    ``remaining`` (the rows not forgotten yet: a list holding one array,
    updated)."""
    times = []
    for _ in range(repeats):
        rows = rng.choice(remaining[0], size, replace=False)
        remaining[0] = np.setdiff1d(remaining[0], rows)
        seconds, _ = timed(model.partial_forget, X[rows], y[rows])
        times.append(seconds)
    return float(np.median(times))


def distance(model, X, y, rows, refit):
    """Relative distance to ``refit`` after forgetting ``rows`` (on a copy)."""
    updated = copy.deepcopy(model)
    updated.partial_forget(X[rows], y[rows])
    target = flat(refit)
    return float(
        np.linalg.norm(flat(updated) - target) / np.linalg.norm(flat(model) - target)
    )


def measure(problem, X, y, representations, lr_params, started, quick, budget):
    """One problem's rows; no new fit starts ``budget`` seconds after ``started``."""
    rng = np.random.default_rng(0)
    n = X.shape[0]
    plain_s = min(timed(LogisticRegression(**lr_params).fit, X, y)[0] for _ in range(2))
    # One 100-row request's refit, and a 1 % deletion's tight refit (fidelity).
    hundred = rng.choice(n, 100, replace=False)
    keep = np.setdiff1d(np.arange(n), hundred)
    refit_s, _ = timed(LogisticRegression(**lr_params).fit, X[keep], y[keep])
    one_percent = rng.choice(n, n // 100, replace=False)
    rest = np.setdiff1d(np.arange(n), one_percent)
    rows, fidelity = [], {}
    default_structure = None  # an explicit structure equal to it is not refitted
    for rep in representations:
        if rep.problems and problem not in rep.problems:
            continue
        Xr = X.astype(rep.dtype)
        params = {"curvature": "hessian", **lr_params, **rep.params}
        model = ErasableLogisticRegression(**params)
        try:
            estimate = check_memory_budget(model, Xr, y)
        except CurvatureMemoryError:
            refuse_s = timed(_refused, model, Xr, y)[0]
            estimate = check_memory_budget(
                copy.deepcopy(model).set_params(memory_budget=None), Xr, y
            )
            rows.append(
                {
                    "representation": rep.name,
                    "refused": refuse_s,
                    "stored": estimate.stored_bytes,
                    "peak estimate": estimate.peak_bytes,
                }
            )
            continue
        if rep.estimate_only:
            rows.append(
                {
                    "representation": rep.name,
                    "estimated": True,
                    "stored": estimate.stored_bytes,
                    "peak estimate": estimate.peak_bytes,
                }
            )
            continue
        explicit = rep.params.get("curvature_structure")
        if (
            explicit is not None
            and explicit == default_structure
            and set(rep.params) <= {"curvature_structure", "block_size"}
        ):
            rows.append({"representation": rep.name, "as_default": True})
            continue
        if time.perf_counter() - started > budget:
            rows.append({"representation": rep.name, "skipped": True})
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CostlyErasureWarning)
            fit_s, peak, _ = traced(model.fit, Xr, y)
        stored = model.curvature_inverse_.nbytes
        name = rep.name
        if "curvature_structure" not in rep.params:
            name = f"{rep.name} → {model.curvature_structure_!r}"
            default_structure = model.curvature_structure_
        if any(issubclass(w.category, CostlyErasureWarning) for w in caught):
            name += " (fit warns: `CostlyErasureWarning`)"
        if fidelity.get("refit") is None and problem == FIDELITY_PROBLEM[quick]:
            fidelity["refit"] = LogisticRegression(
                **{**lr_params, "tol": 1e-10, "max_iter": 10000}
            ).fit(X[rest], y[rest])
        if "refit" in fidelity:
            fidelity[rep.name] = distance(model, Xr, y, one_percent, fidelity["refit"])
        if rep.fidelity_only:
            continue
        try:
            remaining = [np.arange(n)]  # a row is forgotten once
            one_s = requests(model, Xr, y, rng, 1, 3 if fit_s > 10 else 10, remaining)
            hundred_s = requests(
                model, Xr, y, rng, 100, 1 if fit_s > 10 else 3, remaining
            )
        except ErasureError as exc:  # a refused request is a result too
            rows.append({"representation": rep.name, "error": type(exc).__name__})
            continue
        rows.append(
            {
                "representation": name,
                "plain": plain_s,
                "fit": fit_s,
                "peak": peak,
                "stored": stored,
                "estimate": estimate.stored_bytes,
                "one": one_s,
                "hundred": hundred_s,
                "refit": refit_s,
                "distance": fidelity.get(rep.name),
            }
        )
    return rows, fidelity


def _refused(model, X, y):
    try:
        model.fit(X, y)
    except CurvatureMemoryError:
        return
    raise AssertionError("expected the memory budget to refuse this fit")


FIDELITY_PROBLEM = {False: "binary, ~7 700 features", True: "binary, ~4 600 features"}


def table(problem, shape, nnz, rows, fidelity):
    lines = [
        f"**{problem}**: {shape[0]} documents × {shape[1]} features, {nnz} non-zeros.",
        "",
        "| representation | plain fit | erasable fit (target ≤ 3 × plain + 2 s) "
        "| traced peak | stored (target ≤ 300 MB) | 1 row (target ≤ 10 ms) "
        "| 100 rows / refit (target ≤ 0.05) | distance, 1 % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.get("skipped"):
            lines.append(f"| {row['representation']} | skipped (time limit) |||||||")
            continue
        if row.get("as_default"):
            lines.append(
                f"| {row['representation']} | the default's structure: as above |||||||"
            )
            continue
        if "error" in row:
            lines.append(
                f"| {row['representation']} | a request was refused: "
                f"{row['error']} |||||||"
            )
            continue
        if row.get("estimated"):
            lines.append(
                f"| {row['representation']} | not built (estimate only) | — "
                f"| estimate {format_bytes(row['peak estimate'])} "
                f"| estimate {format_bytes(row['stored'])} | — | — | — |"
            )
            continue
        if "refused" in row:
            lines.append(
                f"| {row['representation']} | — | refused by `memory_budget` in "
                f"{1000 * row['refused']:.0f} ms, before the solver | estimate "
                f"{format_bytes(row['peak estimate'])} "
                f"| estimate {format_bytes(row['stored'])} | — | — | — |"
            )
            continue
        bound = 3 * row["plain"] + 2
        ok = "✓" if row["fit"] <= bound else "✗"
        store_ok = "✓" if row["stored"] <= 300e6 else "✗"
        one_ok = "✓" if row["one"] <= 0.01 else "✗"
        ratio = row["hundred"] / row["refit"]
        ratio_ok = "✓" if ratio <= 0.05 else "✗"
        dist = "" if row["distance"] is None else f"{row['distance']:.3f}"
        lines.append(
            f"| {row['representation']} | {row['plain']:.2f} s "
            f"| {row['fit']:.2f} s ({row['fit'] / row['plain']:.1f}×) {ok} "
            f"| {format_bytes(row['peak'])} "
            f"| {row['stored'] / 1e6:.0f} MB {store_ok} "
            f"| {1000 * row['one']:.1f} ms {one_ok} "
            f"| {row['hundred']:.3f} s / {row['refit']:.2f} s = {ratio:.3f} "
            f"{ratio_ok} | {dist} |"
        )
    if len(fidelity) > 1:
        dense = fidelity.get("dense block, float32")
        diagonal = fidelity.get("diagonal, float32")
        if dense is not None and diagonal is not None:
            lines += [
                "",
                f"Distance to the refit of a 1 % deletion: dense block {dense:.3f}, "
                f"diagonal {diagonal:.3f}; halfway (target to beat) "
                f"{(dense + diagonal) / 2:.3f}.",
            ]
    return lines


def main(quick=False, time_limit=None):
    global TIME_LIMIT_S
    if time_limit is not None:
        TIME_LIMIT_S = time_limit
    # One BLAS thread: on a shared machine, OpenBLAS threads waiting for a core
    # made small inversions 10-30 × slower than on one thread (measured).
    with threadpool_limits(limits=1, user_api="blas"):
        run(quick)


def run(quick):
    warnings.simplefilter("ignore", ConvergenceWarning)
    started = time.perf_counter()
    problems = QUICK_PROBLEMS if quick else PROBLEMS
    # The default, then the scalable structures (cheap), then the blocks.
    representations = (
        REPRESENTATIONS[:1] + scalable_representations() + REPRESENTATIONS[1:]
    )
    lr_params = {"C": 1.0}
    lines = [
        f"# Sparse text: build, memory and requests ({datetime.date.today()}; "
        f"{os.cpu_count()} cores, shared, noisy: load average "
        f"{os.getloadavg()[0]:.1f} at the start)",
        "",
        f"`python benchmarks/bench_text.py{' --quick' if quick else ''}"
        f"{f' --time-limit {TIME_LIMIT_S:g}' if TIME_LIMIT_S != 240 else ''}`; "
        "Python "
        f"{platform.python_version()}, NumPy {np.__version__}, SciPy "
        f"{scipy.__version__}, scikit-learn {sklearn.__version__}; one BLAS "
        "thread for everything (plain fits included). Data: "
        "`load_docstring_corpus` (TF-IDF of the standard library's docstrings). "
        "Repeated documents are dropped (a request names each row once). "
        "Model: `ErasableLogisticRegression(curvature='hessian', C=1.0)` with the "
        "representation's parameters, on X in its dtype; plain: "
        "`LogisticRegression(C=1.0)` (best of 2). Erasable fit includes the "
        "solver; traced peak is `tracemalloc`'s during it. 1 row: median of 10 "
        "requests (3 when the fit took over 10 s); 100 rows: median of 3 (1 when "
        "the fit took over 10 s), "
        "against one plain refit on the remaining rows. Distance: "
        "‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖ for a random 1 % deletion against a "
        "tight refit (tol=1e-10), where the dense block fits.",
        "",
    ]
    for index, (problem, kwargs) in enumerate(problems.items()):
        X, y = distinct_rows(*load_docstring_corpus(**kwargs))
        # Each problem gets an equal share of the time limit (and what the
        # earlier ones left).
        budget = (time.perf_counter() - started) + (
            TIME_LIMIT_S - (time.perf_counter() - started)
        ) / (len(problems) - index)
        rows, fidelity = measure(
            problem, X, y, representations, lr_params, started, quick, budget
        )
        lines += table(problem, X.shape, X.nnz, rows, fidelity) + [""]
        print("\n".join(lines[-len(rows) - 8 :]), flush=True)
    elapsed = time.perf_counter() - started
    lines.append(f"Total time {elapsed:.0f} s.")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS} ({elapsed:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help=f"seconds after which no new fit starts (default {TIME_LIMIT_S})",
    )
    main(**vars(parser.parse_args()))
