"""Small data and helpers shared by the linear-model tests."""

import numpy as np
from sklearn.preprocessing import StandardScaler


def scaled(loader, n=None):
    """A bundled data set, standardised, optionally its first ``n`` rows."""
    X, y = loader(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return (X[:n], y[:n]) if n else (X, y)


def flat_params(model):
    """``[coef_ | intercept_]`` of a linear model, flattened row by row."""
    return np.hstack([model.coef_, model.intercept_[:, None]]).ravel()
