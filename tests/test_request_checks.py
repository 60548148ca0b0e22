"""Genuine requests accepted, wrong ones refused; one request, one snapshot (issue 23).

- float32 data with a feature far smaller than the others: a genuine row is never
  called foreign by the "more curvature than the data put in" check;
- request weights heavier than any training row's are refused;
- the MLP refuses a step that overflows, and warns at ``fit`` on unscaled inputs;
- ``set_params`` racing requests: every request uses one validated snapshot of
  the parameters (its record states the ε it applied; an invalid value is
  refused, never applied).
"""

import threading
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasableMLPClassifier,
    ErasureNumericalError,
    InvalidRequestError,
)
from sklearn_ssse.exceptions import UnscaledInputWarning


def _tiny_feature_data(n=200, seed=0, scale=1e-5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    X[:, 0] *= scale
    y = (X[:, 1] + rng.normal(size=n) > 0).astype(int)
    return X, y


@pytest.mark.parametrize("scale", [1e-5, 1e-25])
@pytest.mark.parametrize("structure", ["blocks", "cg", "cg-class", "cg-rows"])
def test_float32_rows_with_a_tiny_feature_are_accepted(structure, scale):
    X, y = _tiny_feature_data(scale=scale)
    model = ErasableLogisticRegression(curvature_structure=structure).fit(X, y)
    for i in range(5):
        model.partial_forget(X[i : i + 1], y[i : i + 1])
    assert model.n_forgotten_ == 5


def test_weights_heavier_than_any_training_row_are_refused():
    X, y = _tiny_feature_data()
    X = X.astype(np.float64)
    model = ErasableLogisticRegression().fit(X, y)
    before = model.coef_.copy()
    with pytest.raises(InvalidRequestError, match="larger than any training row"):
        model.partial_forget(X[:1], y[:1], sample_weight=[3.0])
    np.testing.assert_array_equal(model.coef_, before)
    model.partial_forget(X[:1], y[:1], sample_weight=[1.0])  # as trained
    weighted = ErasableLogisticRegression().fit(X, y, sample_weight=np.full(len(y), 3))
    weighted.partial_forget(X[:1], y[:1], sample_weight=[3.0])


def test_mlp_refuses_an_overflowing_step_and_warns_at_fit():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16 * 1e150, y[:300]
    with pytest.warns(UnscaledInputWarning, match="unit scale"):
        model = ErasableMLPClassifier(
            hidden_layer_sizes=(8,), max_iter=20, random_state=0
        ).fit(X, y)
    before = [c.copy() for c in model.coefs_]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ErasureNumericalError, match="non-finite"):
            model.partial_forget(X[:3], y[:3])
    for a, b in zip(model.coefs_, before):
        np.testing.assert_array_equal(a, b)


def test_scaled_mlp_inputs_do_not_warn():
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnscaledInputWarning)
        warnings.simplefilter("ignore", UserWarning)
        ErasableMLPClassifier(hidden_layer_sizes=(8,), max_iter=20).fit(
            X[:200] / 16, y[:200]
        )


def test_set_params_racing_requests_never_mixes_parameters():
    X, y = _tiny_feature_data(n=400)
    X = X.astype(np.float64)
    model = ErasableLogisticRegression(forget_scale=1.0).fit(X, y)
    stop = threading.Event()

    def flip():
        values = [0.5, -1.0, 1.0]  # -1 is invalid
        i = 0
        while not stop.is_set():
            model.set_params(forget_scale=values[i % 3])
            i += 1

    thread = threading.Thread(target=flip)
    thread.start()
    applied = refused = 0
    try:
        for i in range(60):
            try:
                model.partial_forget(X[i : i + 1], y[i : i + 1])
                applied += 1
            except ValueError:  # the invalid value, refused (InvalidParameterError)
                refused += 1
    finally:
        stop.set()
        thread.join()
    records = model.request_records_
    assert len(records) == applied and applied + refused == 60
    assert all(r.forget_scale in (0.5, 1.0) for r in records)


# -- options resolved once, before the solver (issue 21) ------------------------
@pytest.mark.parametrize(
    "params, match",
    [
        (dict(curvature_structure="cg", l1_ratio=0.5, solver="saga"), "L1"),
        (dict(curvature_structure="cg-rows", l1_ratio=1.0, solver="saga"), "L1"),
        (
            dict(curvature="fisher", fisher_batch_size=8, curvature_structure="cg"),
            "exact",
        ),
        (dict(curvature="hessian", fisher_batch_size=8), "needs curvature='fisher'"),
        (dict(removal_noise=1.0, C=np.inf), "pure L2"),
    ],
)
def test_incompatible_options_are_refused_before_the_solver(params, match, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    def solver_ran(*args, **kwargs):
        raise AssertionError("the solver ran before the options were checked")

    monkeypatch.setattr(LogisticRegression, "fit", solver_ran)
    X, y = _tiny_feature_data()
    with pytest.raises(ValueError, match=match):
        ErasableLogisticRegression(**params).fit(X, y)
