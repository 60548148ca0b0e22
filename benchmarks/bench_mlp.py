"""Erasing digits from an MLP: SSSE against a refit and a gradient-ascent step.

The paper's §5.3 protocol (a ResNet20 on CIFAR10 there) on scikit-learn's bundled
digits: fit an :class:`~sklearn_ssse.neural_network.ErasableMLPClassifier`, erase all
(100 %) or half (50 %) of the training rows of one digit in one request, and compare
the updated model with a **refit** from the same ``random_state`` without them:

- accuracy on the four splits: remaining training rows ``D∖S``, forgotten rows ``S``,
  test rows of the other digits ``T∖Tₐ``, test rows of the erased digit ``Tₐ``;
- the normalized confusion distance δ (METHOD.md; lower is better, 0 = the refit's
  confusion matrix on ``S``) over a grid of the scale ε;
- baselines: one gradient-ascent step (the paper's Figure 6) over a grid of learning
  rates, from :func:`sklearn_ssse.baselines.gradient_ascent_update`, i.e.
  ``θ + lr · (Σ_{i∈S} ∇ℓ_i − r₀)`` with the same cancellation of the solver's
  leftover gradient ``r₀`` as SSSE, so that only the preconditioner differs
  (``M⁻¹`` against ``lr · I``); and "mask only", no parameter change at all.

A digit whose rows are all forgotten is masked out of the predictions by every
method (``ErasableMLPClassifier``'s documented behaviour: a refit never predicts
it), so for 100 % removals the accuracy on ``S`` and ``Tₐ`` is 0 by construction and
the comparison is in δ (where the forgotten rows go instead) and in the other
splits. Means over the first ``--classes`` digits.

Run ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_mlp.py`` (a few minutes on two
cores: 20 requests, each with one refit and 45 updates; one BLAS thread is faster for
these small products); ``--quick`` for a one-digit smoke run that writes nothing.
Writes a markdown table to ``benchmarks/results/mlp.md``.
"""

import argparse
import copy
import datetime
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ssse.baselines import gradient_ascent_update
from sklearn_ssse.metrics import normalized_confusion_distance
from sklearn_ssse.neural_network import ErasableMLPClassifier

RESULTS = Path(__file__).parent / "results" / "mlp.md"
EPSILONS = [0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0]
LEARNING_RATES = [1e-3, 3e-3, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5]
SPLITS = ["D∖S", "S", "T∖Tₐ", "Tₐ"]
METHODS = ["original", "refit", "mask only", "SSSE", "gradient ascent"]


def make_model(**params):
    """The network of the experiment: one hidden layer, per-layer Fisher blocks."""
    model = ErasableMLPClassifier(
        hidden_layer_sizes=(32,),
        solver="lbfgs",
        alpha=1.0,
        max_iter=400,
        random_state=0,
        block_size="class",
    )
    return model.set_params(**params)


# Other curvature settings, each evaluated over the same grid of ε. They do not change
# the fitted weights (only the stored curvature), so they share the refit.
VARIANTS = {
    "leave_out=False": dict(leave_out=False),
    "one dense block": dict(block_size=None),
    "blocks of 1024": dict(block_size=1024),
    "fisher_batch_size=10": dict(fisher_batch_size=10),
}


def load_data():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, stratify=y, random_state=0)


def forget_rows(y_train, digit, fraction):
    """Indices of ``fraction`` of the training rows of ``digit`` (seeded by it)."""
    in_class = np.flatnonzero(y_train == digit)
    chosen = np.random.default_rng(digit).permutation(in_class)
    return np.sort(chosen[: int(round(fraction * len(in_class)))])


def masked_copy(model, y_forget):
    """The original parameters, with the bookkeeping of the request (the mask)."""
    masked = copy.deepcopy(model)
    y_idx = np.searchsorted(model.classes_, y_forget)
    masked.class_counts_ = model.class_counts_ - np.bincount(
        y_idx, minlength=len(model.classes_)
    )
    return masked


def evaluate(original, variants, digit, fraction, data):
    """Result rows of every method for one request (one digit, one fraction)."""
    X_train, X_test, y_train, y_test = data
    forget = forget_rows(y_train, digit, fraction)
    keep = np.setdiff1d(np.arange(len(y_train)), forget)
    X_S, y_S = X_train[forget], y_train[forget]
    splits = {
        "D∖S": (X_train[keep], y_train[keep]),
        "S": (X_S, y_S),
        "T∖Tₐ": (X_test[y_test != digit], y_test[y_test != digit]),
        "Tₐ": (X_test[y_test == digit], y_test[y_test == digit]),
    }
    start = time.perf_counter()
    refit = clone(original).fit(X_train[keep], y_train[keep])
    refit_seconds = time.perf_counter() - start
    y_original, y_refit = original.predict(X_S), refit.predict(X_S)

    def row(method, value, model, seconds=np.nan):
        out = dict(method=method, value=value, seconds=seconds)
        out["δ"] = normalized_confusion_distance(
            y_S,
            model.predict(X_S),
            y_pred_original=y_original,
            y_pred_refit=y_refit,
            labels=original.classes_,
            zero_division=0.5,  # the three agree on S: the deletion is invisible
        )
        for name, (X, y) in splits.items():
            out[name] = float(np.mean(model.predict(X) == y))
        return out

    rows = [
        row("original", np.nan, original),
        row("refit", np.nan, refit, refit_seconds),
        row("mask only", 0.0, masked_copy(original, y_S)),
    ]
    for eps in EPSILONS:
        updated = copy.deepcopy(original).set_params(forget_scale=eps)
        start = time.perf_counter()
        updated.partial_forget(X_S, y_S)
        rows.append(row("SSSE", eps, updated, time.perf_counter() - start))
    for name, variant in variants.items():
        for eps in EPSILONS:
            updated = copy.deepcopy(variant).set_params(forget_scale=eps)
            try:
                updated.partial_forget(X_S, y_S)
            except ValueError:  # a downdate that is not positive definite
                rows.append(dict(method=f"SSSE, {name}", value=eps, failed=True))
                continue
            rows.append(row(f"SSSE, {name}", eps, updated))
    for lr in LEARNING_RATES:
        ascended = gradient_ascent_update(original, X_S, y_S, learning_rate=lr)
        rows.append(row("gradient ascent", lr, ascended))
    disagreements = int(np.sum(y_original != y_refit))
    return rows, disagreements, len(forget)


def summarise(results):
    """Mean over digits of every ``(fraction, method, value)``."""
    grouped = {}
    for (fraction, _), rows in results.items():
        for r in rows:
            grouped.setdefault((fraction, r["method"], r["value"]), []).append(r)
    out = {}
    for key, rows in grouped.items():
        failed = sum(r.get("failed", False) for r in rows)
        if failed:  # reported, not averaged
            out[key] = {"failed": failed, "total": len(rows)}
            continue
        out[key] = {k: float(np.mean([r[k] for r in rows])) for k in ("δ", *SPLITS)}
        out[key]["seconds"] = float(np.mean([r["seconds"] for r in rows]))
    return out


def best(summary, fraction, method):
    """``(value, scores)`` of the grid value of ``method`` with the lowest mean δ."""
    grid = {
        v: s
        for (f, m, v), s in summary.items()
        if f == fraction and m == method and "failed" not in s
    }
    if not grid:
        return None, None
    value = min(grid, key=lambda v: (grid[v]["δ"], v))
    return value, grid[value]


def _failures(summary, fraction, method):
    return [
        (v, s)
        for (f, m, v), s in sorted(summary.items())
        if f == fraction and m == method and "failed" in s
    ]


def _cells(scores):
    return f"{scores['δ']:.3f} | " + " | ".join(f"{scores[k]:.3f}" for k in SPLITS)


def to_markdown(summary, meta):
    fractions = meta["fractions"]
    lines = [
        "# Erasing digits from an MLP (SSSE, the paper's §5.3)",
        "",
        f"{datetime.date.today().isoformat()}; scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; "
        f"`python benchmarks/bench_mlp.py`, {meta['total_seconds']:.0f} s in all.",
        "",
        f"Bundled digits, {meta['n_train']} training rows (75 %), "
        f"{meta['n_test']} test rows. Model: `ErasableMLPClassifier("
        "hidden_layer_sizes=(32,), solver='lbfgs', alpha=1.0, max_iter=400, "
        f"random_state=0, block_size='class')`, {meta['n_params']} parameters, "
        f"test accuracy {meta['test_accuracy']:.3f}; fit with the erasure state "
        f"{meta['fit_seconds']:.1f} s, one refit {meta['refit_seconds']:.1f} s, one "
        f"SSSE request {meta['forget_seconds']:.2f} s. One request erases "
        f"{' or '.join(f'{round(100 * f)} %' for f in fractions)} of the training "
        f"rows of one digit; means over digits {meta['classes']}. δ: normalized "
        "confusion distance on S against the refit from the same random_state "
        "(lower is better; 0/0 counted as 0.5). Accuracy on the remaining training "
        "rows D∖S, the forgotten rows S, the test rows of the other digits T∖Tₐ "
        "and of the erased digit Tₐ. Gradient ascent: "
        "`sklearn_ssse.baselines.gradient_ascent_update`.",
        "",
        "## Best value of each method (lowest mean δ over its grid)",
        "",
        "| removal | method | ε or lr | δ | " + " | ".join(SPLITS) + " |",
        "|---|---|---|---|" + "---|" * len(SPLITS),
    ]
    methods = METHODS[:4] + [f"SSSE, {name}" for name in VARIANTS] + METHODS[4:]
    failures = []
    for fraction in fractions:
        for method in methods:
            value, scores = best(summary, fraction, method)
            failed = _failures(summary, fraction, method)
            failures += [(fraction, method, v, s) for v, s in failed]
            if scores is None:
                lines.append(
                    f"| {round(100 * fraction)} % | {method} | – | failed at every "
                    "ε | | | | |"
                )
                continue
            shown = "" if np.isnan(value) else f"{value:g}"
            lines.append(
                f"| {round(100 * fraction)} % | {method} | {shown} | {_cells(scores)} |"
            )
    refused = {}
    for fraction, method, _, scores in failures:  # the same for every ε
        refused[(fraction, method)] = (scores["failed"], scores["total"])
    if refused:
        lines += [
            "",
            "Requests refused with a ValueError (the downdated curvature was not "
            "positive definite; the model is left unchanged), at every ε:",
            "",
        ]
        lines += [
            f"- {round(100 * f)} %, {m}: {k} of {n} digits"
            for (f, m), (k, n) in refused.items()
        ]
    for method, symbol in (("SSSE", "ε"), ("gradient ascent", "lr")):
        lines += [
            "",
            f"## {method} over {symbol}",
            "",
            f"| removal | {symbol} | δ | " + " | ".join(SPLITS) + " |",
            "|---|---|---|" + "---|" * len(SPLITS),
        ]
        for fraction in fractions:
            grid = sorted(
                (v, s)
                for (f, m, v), s in summary.items()
                if f == fraction and m == method
            )
            for value, scores in grid:
                lines.append(
                    f"| {round(100 * fraction)} % | {value:g} | {_cells(scores)} |"
                )
    lines += [
        "",
        "Reading the 50 % rows: the refit still classifies most of S correctly "
        f"(it disagrees with the original on {meta['disagreements'][0.5]:.1f} of "
        f"{meta['n_forget'][0.5]:.0f} forgotten rows per request on average), so "
        "the ideal update barely changes the predictions on S and δ rests on a "
        "handful of rows.",
    ]
    return "\n".join(lines) + "\n"


def main(classes, fractions, write=True):
    begin = time.perf_counter()
    data = load_data()
    X_train, X_test, y_train, y_test = data
    start = time.perf_counter()
    original = make_model().fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    variants = {
        name: make_model(**params).fit(X_train, y_train)
        for name, params in VARIANTS.items()
    }
    results, disagreements, n_forget = {}, {}, {}
    for digit in classes:
        for fraction in fractions:
            rows, changed, k = evaluate(original, variants, digit, fraction, data)
            results[(fraction, digit)] = rows
            disagreements.setdefault(fraction, []).append(changed)
            n_forget.setdefault(fraction, []).append(k)
    summary = summarise(results)
    all_rows = [r for rows in results.values() for r in rows]
    meta = dict(
        fractions=fractions,
        classes=classes,
        n_train=len(y_train),
        n_test=len(y_test),
        n_params=original.curvature_point_.size,
        test_accuracy=original.score(X_test, y_test),
        fit_seconds=fit_seconds,
        refit_seconds=np.mean(
            [r["seconds"] for r in all_rows if r["method"] == "refit"]
        ),
        forget_seconds=np.mean(
            [r["seconds"] for r in all_rows if r["method"] == "SSSE"]
        ),
        disagreements={f: np.mean(v) for f, v in disagreements.items()},
        n_forget={f: np.mean(v) for f, v in n_forget.items()},
    )
    meta["total_seconds"] = time.perf_counter() - begin
    text = to_markdown(summary, meta)
    print(text)
    if write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one digit, no file")
    parser.add_argument("--classes", type=int, default=10, help="first digits to erase")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.quick:
        main([0], [1.0, 0.5], write=False)
    else:
        main(list(range(args.classes)), [1.0, 0.5])
