"""Quickstart: erase rows from a fitted classifier and compare with retraining.

Fits ``ErasableLogisticRegression`` on scikit-learn's bundled digits, erases a
deletion request (a random 2 % of the rows, then half of the 3s) with
``partial_forget``, and prints what a user checks: accuracy on the erased rows and on
held-out rows before and after, next to a model retrained from scratch without them,
plus the time each took.

Run: ``python examples/quickstart.py`` (a few seconds).
"""

# %%
import time

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
rng = np.random.default_rng(0)
requests = {
    "random 2 % of the rows": rng.choice(
        len(y_train), len(y_train) // 50, replace=False
    ),
    "half of the 3s": np.flatnonzero(y_train == 3)[::2],
}

# %%
for title, rows in requests.items():
    keep = np.setdiff1d(np.arange(len(y_train)), rows)
    print(f"\nDeletion request: {title} ({len(rows)} of {len(y_train)} rows)")
    print(f"{'model':<34}{'erased rows':>12}{'test rows':>11}{'seconds':>10}")
    for curvature in ("hessian", "fisher"):
        model = ErasableLogisticRegression(C=0.1, curvature=curvature, max_iter=1000)
        model.fit(X_train, y_train)
        if curvature == "hessian":
            row = ("original (before erasure)", model, 0.0)
            print(
                f"{row[0]:<34}{model.score(X_train[rows], y_train[rows]):>12.3f}"
                f"{model.score(X_test, y_test):>11.3f}{'':>10}"
            )
            start = time.perf_counter()
            refit = clone(model).fit(X_train[keep], y_train[keep])
            refit_time = time.perf_counter() - start
        start = time.perf_counter()
        model.partial_forget(X_train[rows], y_train[rows])
        elapsed = time.perf_counter() - start
        label = {
            "hessian": "partial_forget, influence (ε = 1)",
            "fisher": "partial_forget, SSSE Fisher (ε = 1)",
        }[curvature]
        print(
            f"{label:<34}{model.score(X_train[rows], y_train[rows]):>12.3f}"
            f"{model.score(X_test, y_test):>11.3f}{elapsed:>10.4f}"
        )
    print(
        f"{'retrained from scratch (the goal)':<34}"
        f"{refit.score(X_train[rows], y_train[rows]):>12.3f}"
        f"{refit.score(X_test, y_test):>11.3f}{refit_time:>10.4f}"
    )
