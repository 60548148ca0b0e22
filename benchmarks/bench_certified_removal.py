"""Certified removal (objective perturbation): what the noise costs, what it buys.

For scikit-learn's bundled data sets (standardised, 70/30 stratified split) and a
few noise levels σ (``removal_noise``):

- test accuracy of the perturbed model against the plain one
  (``LogisticRegression``'s solution, ``removal_noise=None``), mean over seeds;
- how many sequential requests, of one row each and of 1 % of the training
  rows each (random order), keep the (ε = 1, δ = 1e-4)-certified removal
  guarantee, i.e. how long the data-free cumulative gradient bound stays below
  ``σ ε / √(2 log(1.5/δ))`` (capped at ``--max-rows`` and 50);
- the perturbed fit's time as a ratio of the plain fit's (same run).

Run ``python benchmarks/bench_certified_removal.py`` (about a minute);
``--quick`` for a smoke run. Writes ``benchmarks/results/certified_removal.md``.
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
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._perturbation import gradient_budget
from sklearn_ssse.exceptions import RefitRecommendedWarning

RESULTS = Path(__file__).parent / "results" / "certified_removal.md"
DATASETS = {
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "digits": load_digits,
}
EPSILON, DELTA = 1.0, 1e-4


def load(name):
    X, y = DATASETS[name](return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    keep = scaler.scale_ > 0
    return (
        scaler.transform(X_train)[:, keep],
        scaler.transform(X_test)[:, keep],
        y_train,
        y_test,
    )


def requests_within(model, X, y, size, cap, seed):
    """Sequential requests of ``size`` rows until the guarantee breaks (≤ cap)."""
    order = np.random.default_rng(seed).permutation(len(y))
    first = None
    for r in range(cap):
        rows = order[r * size : (r + 1) * size]
        if len(rows) < size or model.class_counts_.min() <= size:
            break
        model.partial_forget(X[rows], y[rows])
        entry = model.request_records_[-1].certificate["certified_removal"]
        if first is None:
            first = model.request_records_[-1].certificate["cumulative_gradient_bound"]
        if not entry["holds"]:
            return r, first
    return cap, first


def timed_fit(model, X, y):
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def run(name, noises, seeds, max_rows):
    X, X_test, y, y_test = load(name)
    plain = ErasableLogisticRegression(max_iter=1000)
    plain_time = timed_fit(plain, X, y)
    plain_accuracy = plain.score(X_test, y_test)
    percent = max(1, len(y) // 100)
    rows = []
    for noise in noises:
        accuracy, single, batch, times, first = [], [], [], [], []
        for seed in seeds:
            model = ErasableLogisticRegression(
                max_iter=1000, removal_noise=noise, random_state=seed
            )
            times.append(timed_fit(model, X, y))
            accuracy.append(model.score(X_test, y_test))
            count, bound = requests_within(
                copy.deepcopy(model), X, y, 1, max_rows, seed
            )
            single.append(count)
            first.append(bound)
            batch.append(requests_within(model, X, y, percent, 50, seed)[0])
        rows.append(
            {
                "data": name,
                "classes": len(np.unique(y)),
                "n": len(y),
                "noise": noise,
                "budget": gradient_budget(noise, EPSILON, DELTA),
                "plain": plain_accuracy,
                "accuracy": float(np.mean(accuracy)),
                "accuracy_min": float(np.min(accuracy)),
                "single": int(np.median(single)),
                "batch": int(np.median(batch)),
                "percent": percent,
                "first": float(np.median(first)),
                "fit_ratio": float(np.median(times)) / plain_time,
            }
        )
        print(rows[-1], flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-rows", type=int, default=200)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RefitRecommendedWarning)
    noises = [0.1, 1.0] if args.quick else [0.1, 1.0, 10.0]
    seeds = [0] if args.quick else [0, 1]
    max_rows = 20 if args.quick else args.max_rows
    names = ["breast_cancer", "wine"] if args.quick else list(DATASETS)
    rows = []
    for name in names:
        rows.extend(run(name, noises, seeds, max_rows))

    date = datetime.date.today().isoformat()
    c = np.sqrt(2 * np.log(1.5 / DELTA))
    lines = [
        f"# Certified removal: accuracy against requests ({date}, "
        f"{platform.machine()}, {os.cpu_count()} cores, shared, noisy)",
        "",
        f"`removal_noise=σ`, (ε, δ) = ({EPSILON:g}, {DELTA:g}): the guarantee "
        f"holds while the data-free cumulative gradient bound β ≤ σ ε / {c:.2f}. "
        "Standardised features, 70/30 stratified split, test accuracy (mean over "
        f"{len(seeds)} noise draws; min in brackets) against `LogisticRegression`'s "
        "(*plain*). *Requests kept*: sequential requests (random order, median "
        f"over the draws) before the guarantee first fails, capped at {max_rows} "
        "(1 row) and 50 (1 %). *β after 1 row*: the certified bound after the "
        "first one-row request. *Fit*: the perturbed fit's time / the plain "
        "fit's (same run).",
        "",
        "| data | classes | n train | σ | budget σε/c | test acc. plain | test acc. "
        "perturbed | 1-row requests kept | 1 % requests kept | β after 1 row | "
        "fit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['classes']} | {r['n']} | {r['noise']:g} | "
            f"{r['budget']:.3g} | {r['plain']:.3f} | {r['accuracy']:.3f} "
            f"({r['accuracy_min']:.3f}) | {r['single']} | {r['batch']} "
            f"({r['percent']} rows each) | {r['first']:.3g} | "
            f"{r['fit_ratio']:.1f}× |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
