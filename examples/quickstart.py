"""
=====================================================================
Quickstart: erase rows from a fitted classifier, compare with a refit
=====================================================================

Fits ``ErasableLogisticRegression`` on scikit-learn's bundled digits, picks the SSSE
step scale ε once on a calibration deletion (one refit), then serves two deletion
requests (a random 2 % of the rows, and half of the 3s) with ``partial_forget``. For
each it prints what a user checks: accuracy on the erased rows and on held-out rows,
next to the model before erasure and a model retrained from scratch without the rows,
and the time each took. The influence update (``curvature="hessian"``, ε = 1, no
tuning) is shown too.

Run: ``python examples/quickstart.py`` (a few seconds).
"""

# %%
import copy
import time

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression, forget_scale_curve

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
rng = np.random.default_rng(0)
n = len(y_train)

# %% Fit once; choose ε on a calibration deletion (random rows) with one refit.
params = dict(C=0.1, max_iter=1000)
models = {
    "SSSE (Fisher)": ErasableLogisticRegression(curvature="fisher", **params).fit(
        X_train, y_train
    ),
    "influence (Hessian)": ErasableLogisticRegression(
        curvature="hessian", **params
    ).fit(X_train, y_train),
}
calibration = rng.choice(n, n // 50, replace=False)
rest = np.setdiff1d(np.arange(n), calibration)
reference = clone(models["SSSE (Fisher)"]).fit(X_train[rest], y_train[rest])
curve = forget_scale_curve(
    models["SSSE (Fisher)"],
    X_train[calibration],
    y_train[calibration],
    refit_estimator=reference,
    scoring="neg_relative_parameter_distance",
)
models["SSSE (Fisher)"].set_params(forget_scale=curve.best_forget_scale)
print(f"ε chosen on a calibration deletion: {curve.best_forget_scale:.3g}")


# %% Serve deletion requests and compare with retraining from scratch.
def line(label, model, rows, seconds=None):
    """One row of the table: accuracy on the erased rows and on the test set."""
    erased = model.score(X_train[rows], y_train[rows])
    test = model.score(X_test, y_test)
    timing = "" if seconds is None else f"{seconds:.4f}"
    print(f"{label:<36}{erased:>12.3f}{test:>11.3f}{timing:>10}")


requests = {
    "a random 2 % of the rows": rng.choice(rest, n // 50, replace=False),
    "half of the 3s": np.flatnonzero(y_train == 3)[::2],
}
for title, rows in requests.items():
    keep = np.setdiff1d(np.arange(n), rows)
    print(f"\nDeletion request: {title} ({len(rows)} of {n} rows)")
    print(f"{'model':<36}{'erased rows':>12}{'test rows':>11}{'seconds':>10}")

    line("before erasure", models["SSSE (Fisher)"], rows)
    for name, model in models.items():
        updated = copy.deepcopy(model)
        start = time.perf_counter()
        updated.partial_forget(X_train[rows], y_train[rows])
        line(f"partial_forget, {name}", updated, rows, time.perf_counter() - start)
    start = time.perf_counter()
    refit = clone(models["SSSE (Fisher)"]).fit(X_train[keep], y_train[keep])
    line("retrained from scratch (the goal)", refit, rows, time.perf_counter() - start)
