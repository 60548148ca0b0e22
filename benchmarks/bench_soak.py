"""Can the defaults wreck a model? Sequential soaks and single large requests.

Issue 9's measurements, on data the unit tests never use:

1. **Sequential soak**: 50 requests of 1 % of the rows each (random, disjoint), on a
   binary, a 10-class and a 26-class problem, for each curvature configuration: the
   Hessian at ε = 1 (the default since 0.2), the paper's Fisher at ε = 1 (the old
   default) and the Fisher at an ε calibrated on one separate 1 % deletion (the
   paper's workflow), with the forgotten rows' gradients linearised at the fit
   point (``linearization="fit"``, the default) or taken at the current point.
   Test accuracy and the relative distance to the refit
   ``‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖`` (0: the refit; 1: as if nothing was erased)
   after 1, 10, 25 and 50 requests; the refit's accuracy after 50.
2. **One large request** (5 % of the rows) with default settings where one Newton
   step is least trustworthy: near-separable data, a large ``C``, more features than
   rows.
3. **The shipped default** on a random 2 % deletion (10 seeds): how often the update
   is further from the refit than the unchanged model.

Run ``python benchmarks/bench_soak.py`` (a few minutes); writes
``benchmarks/results/soak.md``.
"""

import copy
import datetime
import os
import platform
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_wine,
    make_classification,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasureError,
    RefitRecommendedWarning,
)

RESULTS = Path(__file__).parent / "results" / "soak.md"
# Solved tightly, so that distances measure the update, not the solver's tolerance.
TIGHT = dict(tol=1e-10, max_iter=10000)
CHECKPOINTS = (1, 10, 25, 50)
CONFIGS = {
    "Hessian, ε = 1 (default)": dict(curvature="hessian"),
    "Hessian, ε = 1, gradients at the current point": dict(
        curvature="hessian", linearization="current"
    ),
    "Fisher, ε = 1": dict(curvature="fisher"),
    "Fisher, calibrated ε": dict(curvature="fisher", calibrate=True),
    "Fisher, calibrated ε, gradients at the current point": dict(
        curvature="fisher", linearization="current", calibrate=True
    ),
}


def _letters_like():
    """A 26-class tabular problem (the shape of UCI letters: 16 features)."""
    X, y = make_classification(
        n_samples=6000,
        n_features=16,
        n_informative=12,
        n_redundant=2,
        n_classes=26,
        n_clusters_per_class=1,
        class_sep=1.5,
        random_state=0,
    )
    return X, y


DATASETS = {
    "breast_cancer (binary)": lambda: load_breast_cancer(return_X_y=True),
    "digits (10 classes)": lambda: load_digits(return_X_y=True),
    "synthetic 26 classes": _letters_like,
}


def _split(load):
    X, y = load()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _theta(model):
    return model._get_flat_params()


def _distance(updated, original, refit):
    a, b, c = _theta(updated), _theta(original), _theta(refit)
    return np.linalg.norm(a - c) / np.linalg.norm(b - c)


def _calibrated_scale(model, X, y, rng):
    """ε that brings one separate 1 % deletion closest to its refit."""
    rows = rng.choice(len(y), size=max(1, len(y) // 100), replace=False)
    keep = np.setdiff1d(np.arange(len(y)), rows)
    refit = clone(model).fit(X[keep], y[keep])
    best, best_distance = 1.0, np.inf
    for scale in np.logspace(-2, 0.5, 11):
        trial = copy.deepcopy(model).set_params(forget_scale=scale)
        try:
            trial.partial_forget(X[rows], y[rows])
        except ErasureError:
            continue
        distance = _distance(trial, model, refit)
        if distance < best_distance:
            best, best_distance = scale, distance
    return best


def soak(name, load, rows):
    X, X_test, y, y_test = _split(load)
    n_request = max(1, len(y) // 100)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))[: n_request * CHECKPOINTS[-1]]
    requests = order.reshape(CHECKPOINTS[-1], n_request)
    refits = {}
    for k in CHECKPOINTS:
        keep = np.setdiff1d(np.arange(len(y)), requests[:k].ravel())
        refits[k] = ErasableLogisticRegression(**TIGHT).fit(X[keep], y[keep])
    for label, params in CONFIGS.items():
        params = dict(params)
        calibrate = params.pop("calibrate", False)
        model = ErasableLogisticRegression(**TIGHT, **params).fit(X, y)
        original = copy.deepcopy(model)
        if calibrate:
            scale = _calibrated_scale(model, X, y, np.random.default_rng(1))
            model.set_params(forget_scale=scale)
            label = f"{label} ({scale:.2g})"
        accuracy, distance = {}, {}
        status = "ok"
        warned = None
        for k, request in enumerate(requests, start=1):
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", RefitRecommendedWarning)
                    model.partial_forget(X[request], y[request])
            except ErasureError as exc:
                status = f"refused at request {k}: {type(exc).__name__}"
                break
            if warned is None and any(
                issubclass(w.category, RefitRecommendedWarning) for w in caught
            ):
                warned = k
                status = f"refit recommended from request {k}"
            if k in CHECKPOINTS:
                accuracy[k] = model.score(X_test, y_test)
                refit = refits[k]
                # distance to the refit, against the unchanged model's
                distance[k] = np.linalg.norm(
                    _theta(model) - _theta(refit)
                ) / np.linalg.norm(_theta(original) - _theta(refit))
        rows.append(
            (
                name,
                label,
                original.score(X_test, y_test),
                accuracy,
                refits[CHECKPOINTS[-1]].score(X_test, y_test),
                distance,
                status,
            )
        )


def _near_separable():
    X, y = make_classification(
        n_samples=600, n_features=10, n_informative=6, class_sep=3.0, random_state=3
    )
    return X, y


def _wide():
    X, y = make_classification(
        n_samples=150, n_features=300, n_informative=20, random_state=4
    )
    return X, y


LARGE_REQUEST_CASES = {
    "near-separable (class_sep=3)": (_near_separable, {}),
    "C = 1e4": (lambda: load_breast_cancer(return_X_y=True), {"C": 1e4}),
    "d > n (300 features, 105 rows)": (_wide, {}),
    "d > n, C = inf": (_wide, {"C": np.inf}),
}


def large_requests(rows):
    for name, (load, params) in LARGE_REQUEST_CASES.items():
        X, X_test, y, y_test = _split(load)
        rng = np.random.default_rng(2)
        forget = rng.choice(len(y), size=max(1, len(y) // 20), replace=False)
        keep = np.setdiff1d(np.arange(len(y)), forget)
        for label, config in (
            ("default (Hessian)", {}),
            ("Fisher, ε = 1", {"curvature": "fisher"}),
        ):
            model = ErasableLogisticRegression(**TIGHT, **params, **config)
            model.fit(X, y)
            before = model.score(X_test, y_test)
            refit = clone(model).fit(X[keep], y[keep])
            original = copy.deepcopy(model)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    model.partial_forget(X[forget], y[forget])
                    after = f"{model.score(X_test, y_test):.3f}"
                    distance = f"{_distance(model, original, refit):.3f}"
                except ErasureError as exc:
                    after, distance = f"refused ({type(exc).__name__})", "–"
            flagged = [
                str(w.category.__name__)
                for w in caught
                if not issubclass(w.category, ConvergenceWarning)
            ]
            rows.append(
                (
                    name,
                    label,
                    before,
                    after,
                    refit.score(X_test, y_test),
                    distance,
                    ", ".join(sorted(set(flagged))) or "none",
                )
            )


def shipped_default(rows):
    for name, load in (
        ("breast_cancer", lambda: load_breast_cancer(return_X_y=True)),
        ("wine", lambda: load_wine(return_X_y=True)),
    ):
        X, _, y, _ = _split(load)
        for label, config in (
            ("default (Hessian)", {}),
            ("Fisher, ε = 1", {"curvature": "fisher"}),
        ):
            distances = []
            for seed in range(10):
                rng = np.random.default_rng(seed)
                forget = rng.choice(len(y), size=max(1, len(y) // 50), replace=False)
                keep = np.setdiff1d(np.arange(len(y)), forget)
                model = ErasableLogisticRegression(**TIGHT, **config).fit(X, y)
                refit = clone(model).fit(X[keep], y[keep])
                original = copy.deepcopy(model)
                model.partial_forget(X[forget], y[forget])
                distances.append(_distance(model, original, refit))
            distances = np.array(distances)
            rows.append(
                (
                    name,
                    label,
                    np.median(distances),
                    distances.max(),
                    int(np.sum(distances > 1)),
                )
            )


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    soak_rows, large_rows, default_rows = [], [], []
    for name, load in DATASETS.items():
        soak(name, load, soak_rows)
    large_requests(large_rows)
    shipped_default(default_rows)

    today = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, shared"
    out = [f"# Sequential requests and large requests ({today}, {machine})", ""]
    out += [
        "50 requests of 1 % of the training rows each (disjoint, random), "
        "standardised features, 30 % held out for test accuracy. *distance*: "
        "‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖ after k requests (0: the refit; "
        "1: as if nothing was erased). *status*: the first request after which "
        "`RefitRecommendedWarning` fired (the certificate past the default "
        "`certificate_budget=1e5`), or the request refused; *ok*: neither.",
        "",
        "| data | configuration | acc. before | acc. after 1 / 10 / 25 / 50 "
        "| refit acc. (50) | distance after 1 / 10 / 25 / 50 | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label, before, acc, refit_acc, dist, status in soak_rows:
        accs = " / ".join(f"{acc[k]:.3f}" if k in acc else "–" for k in CHECKPOINTS)
        dists = " / ".join(f"{dist[k]:.3g}" if k in dist else "–" for k in CHECKPOINTS)
        out.append(
            f"| {name} | {label} | {before:.3f} | {accs} | {refit_acc:.3f} "
            f"| {dists} | {status} |"
        )
    out += [
        "",
        "## One request of 5 % of the rows where one step is least trustworthy",
        "",
        "| data | configuration | acc. before | acc. after | refit acc. "
        "| distance | warnings |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label, before, after, refit_acc, distance, flagged in large_rows:
        out.append(
            f"| {name} | {label} | {before:.3f} | {after} | {refit_acc:.3f} "
            f"| {distance} | {flagged} |"
        )
    out += [
        "",
        "## A random 2 % deletion, 10 seeds",
        "",
        "| data | configuration | median distance | worst distance "
        "| runs further than not erasing (of 10) |",
        "|---|---|---|---|---|",
    ]
    for name, label, median, worst, worse in default_rows:
        out.append(f"| {name} | {label} | {median:.3f} | {worst:.3f} | {worse} |")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
