"""serving_model: the plain scikit-learn estimator, predictions identical."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.datasets import load_digits, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasableMLPClassifier,
    ErasableMultiOutputClassifier,
)
from sklearn_ssse.compose import forget
from sklearn_ssse.serving import serving_model


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    keep = y < 4
    return X[keep][::2] / 16, y[keep][::2]


def _same_predictions(a, b, X):
    assert_array_equal(a.predict(X), b.predict(X))
    pa, pb = a.predict_proba(X), b.predict_proba(X)
    if isinstance(pa, list):
        for u, v in zip(pa, pb):
            assert_array_equal(u, v)
    else:
        assert_array_equal(pa, pb)
    if hasattr(a, "decision_function"):
        assert_array_equal(a.decision_function(X), b.decision_function(X))


def _no_state(plain):
    for name in vars(plain):
        assert "curvature" not in name and "class_counts" not in name
        assert "erasure" not in name and "forgotten" not in name


@pytest.mark.parametrize("binary", [True, False])
def test_logistic(digits, binary):
    X, y = digits
    if binary:
        X, y = X[y < 2], y[y < 2]
    model = ErasableLogisticRegression(C=0.5, max_iter=500).fit(X, y)
    model.partial_forget(X[:6], y[:6])
    plain = serving_model(model)
    assert type(plain) is LogisticRegression
    assert plain.get_params()["C"] == 0.5
    _same_predictions(plain, model, X)
    _no_state(plain)
    assert len(pickle.dumps(plain)) < len(pickle.dumps(model)) / 20
    # A whole class forgotten: never predicted, by either.
    rest = np.flatnonzero(y == 1)
    rest = rest[rest >= 6]
    model.partial_forget(X[rest], y[rest])
    plain = serving_model(model)
    _same_predictions(plain, model, X)
    assert not np.any(plain.predict(X) == 1)


def test_pickle_size_many_features():
    X, y = make_classification(300, 400, random_state=0)
    model = ErasableLogisticRegression().fit(X, y)
    plain = serving_model(model)
    reference = LogisticRegression().fit(X, y)
    size = len(pickle.dumps(plain))
    assert size <= 1.1 * len(pickle.dumps(reference))
    assert len(pickle.dumps(model)) > 100 * size


def test_mlp(digits):
    X, y = digits
    model = ErasableMLPClassifier(
        hidden_layer_sizes=(8,), solver="lbfgs", max_iter=100, random_state=0
    ).fit(X, y)
    model.partial_forget(X[y == 2], y[y == 2])
    plain = serving_model(model)
    assert type(plain) is MLPClassifier
    _same_predictions(plain, model, X)
    _no_state(plain)
    assert len(pickle.dumps(plain)) < len(pickle.dumps(model)) / 5


def test_multioutput_pipeline_search(digits):
    X, y = digits
    Y = np.column_stack([y == 0, y == 3]).astype(int)
    multi = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    plain = serving_model(multi)
    assert type(plain) is MultiOutputClassifier
    assert all(type(e) is LogisticRegression for e in plain.estimators_)
    _same_predictions(plain, multi, X)

    pipe = make_pipeline(StandardScaler(), ErasableLogisticRegression()).fit(X, y)
    forget(pipe, X[:3] * 16 / 16, y[:3])
    plain = serving_model(pipe)
    assert type(plain) is Pipeline and type(plain[-1]) is LogisticRegression
    assert plain[0] is not pipe[0]
    _same_predictions(plain, pipe, X)

    search = GridSearchCV(pipe, {"erasablelogisticregression__C": [1.0]}, cv=2)
    search.fit(X, y)
    assert type(serving_model(search)[-1]) is LogisticRegression
    assert type(serving_model(LogisticRegression().fit(X, y))) is LogisticRegression
    with pytest.raises(TypeError, match="serving_model"):
        serving_model(StandardScaler().fit(X))
