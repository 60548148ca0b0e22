"""How close is ``partial_forget`` to retraining? Leave-out or not, Fisher or Hessian.

For scikit-learn's bundled data sets (standardised) and three kinds of deletion
request (a random 1 %, half of one class, a random 5 %), reports the relative
parameter distance ``‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖`` (0: the refit exactly; 1: no
better than not erasing) for the influence update (Hessian, ε = 1) and the SSSE
Fisher update (ε chosen on a separate calibration deletion of the same kind, then
applied to a fresh one), each with ``leave_out`` True and False. Mean over seeds.

This is the measurement behind ``leave_out=True`` being the default.

Run ``python benchmarks/bench_fidelity.py`` (about a minute); writes
``benchmarks/results/fidelity.md``.
"""

import copy
import datetime
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression

RESULTS = Path(__file__).parent / "results" / "fidelity.md"
SCALES = np.logspace(-2, 1, 13)
DATASETS = {
    "breast_cancer (binary)": load_breast_cancer,
    "wine (3 classes)": load_wine,
    "iris (3 classes)": load_iris,
    "digits (10 classes)": load_digits,
}


def deletion(kind, y, rng):
    n = len(y)
    if kind == "random 1 %":
        return rng.choice(n, max(n // 100, 1), replace=False)
    if kind == "random 5 %":
        return rng.choice(n, n // 20, replace=False)
    group = np.flatnonzero(y == rng.choice(np.unique(y)))
    return rng.choice(group, len(group) // 2, replace=False)


def flat(model):
    return np.hstack([model.coef_, model.intercept_[:, None]]).ravel()


def distances(model, X, y, rows, scales):
    """Relative distance to the refit of each scale's update (one step computed)."""
    keep = np.setdiff1d(np.arange(len(y)), rows)
    refit = clone(model).fit(X[keep], y[keep])
    original, target = flat(model), flat(refit)
    updated = copy.deepcopy(model).set_params(forget_scale=1.0)
    updated.partial_forget(X[rows], y[rows])
    step = flat(updated) - original  # the update is linear in ε
    return np.array(
        [
            np.linalg.norm(original + eps * step - target)
            / np.linalg.norm(original - target)
            for eps in scales
        ]
    )


def main(n_seeds=3):
    kinds = ["random 1 %", "half of one class", "random 5 %"]
    lines = []
    for name, loader in DATASETS.items():
        X, y = loader(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        models = {
            (curvature, leave_out): ErasableLogisticRegression(
                curvature=curvature, leave_out=leave_out, tol=1e-8, max_iter=5000
            ).fit(X, y)
            for curvature in ("hessian", "fisher")
            for leave_out in (True, False)
        }
        for kind in kinds:
            cells = {}
            for (curvature, leave_out), model in models.items():
                values = []
                for seed in range(n_seeds):
                    rng = np.random.default_rng(seed)
                    calibration, fresh = deletion(kind, y, rng), deletion(kind, y, rng)
                    if curvature == "hessian":
                        values.append(distances(model, X, y, fresh, [1.0])[0])
                        continue
                    best = SCALES[
                        np.argmin(distances(model, X, y, calibration, SCALES))
                    ]
                    values.append(distances(model, X, y, fresh, [best])[0])
                cells[(curvature, leave_out)] = np.mean(values)
            lines.append(
                f"| {name} | {kind} | "
                + " | ".join(
                    f"{cells[(c, lo)]:.3f}"
                    for c in ("hessian", "fisher")
                    for lo in (True, False)
                )
                + " |"
            )
    header = (
        f"Run {datetime.date.today()}; relative parameter distance to the refit "
        f"(lower is better), mean of {n_seeds} seeds; C = 1.\n\n"
        "| data | deletion | influence, leave-out | influence, full | "
        "SSSE, leave-out | SSSE, full |\n|---|---|---|---|---|---|\n"
    )
    return header + "\n".join(lines) + "\n"


if __name__ == "__main__":
    warnings.simplefilter("ignore", ConvergenceWarning)
    text = main()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)
