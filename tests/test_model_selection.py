"""Choosing ε: ForgetStep in GridSearchCV, the erasure scorers and the fast path."""

import copy

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.datasets import load_wine, make_multilabel_classification
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, validation_curve
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.metrics import relative_parameter_distance, similarity_ratio
from sklearn_ssse.model_selection import (
    ErasureScorer,
    ForgetScaleCurve,
    ForgetStep,
    forget_scale_curve,
    make_erasure_scorer,
)
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier

SCALES = np.logspace(-2, 2, 9)


@pytest.fixture(scope="module")
def multiclass():
    """Wine, a calibration deletion of part of class 1, Fisher and Hessian models."""
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    S = (y == 1) & (X[:, 0] > 0)
    models = {
        kind: ErasableLogisticRegression(curvature=kind).fit(X, y)
        for kind in ("fisher", "hessian")
    }
    refit = LogisticRegression().fit(X[~S], y[~S])
    return dict(X=X, y=y, S=S, models=models, refit=refit)


@pytest.fixture(scope="module")
def multi_output():
    """Multilabel data; label 0 marks a group, the model predicts the others."""
    X, Y = make_multilabel_classification(
        n_samples=150, n_features=8, n_classes=4, n_labels=2, random_state=0
    )
    X = StandardScaler().fit_transform(X)
    S, Y = Y[:, 0] == 1, Y[:, 1:]
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    refit = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(
        X[~S], Y[~S]
    )
    return dict(X=X, y=Y, S=S, model=model, refit=refit)


def _theta(model):
    if hasattr(model, "estimators_"):
        return np.concatenate([_theta(e) for e in model.estimators_])
    return np.hstack([model.coef_, model.intercept_[:, None]]).ravel()


def _single_split(S):
    idx = np.arange(S.sum())
    return [(idx, idx)]


# -- ForgetStep ------------------------------------------------------------------------
def test_forget_step_forgets_from_a_copy(multiclass):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    model = multiclass["models"]["fisher"]
    before = copy.deepcopy(model)
    step = ForgetStep(model, forget_scale=0.3, leave_out=False).fit(X[S], y[S])
    # The wrapped model is untouched; the copy is what partial_forget would give.
    assert_array_equal(model.coef_, before.coef_)
    assert model.n_forgotten_ == 0 and model.forget_scale == 1.0
    expected = before.set_params(forget_scale=0.3, leave_out=False)
    expected.partial_forget(X[S], y[S])
    assert_allclose(step.estimator_.coef_, expected.coef_)
    assert step.estimator_.n_forgotten_ == S.sum()
    # Delegation.
    assert_array_equal(step.classes_, model.classes_)
    assert step.n_features_in_ == X.shape[1]
    assert_allclose(step.predict_proba(X), expected.predict_proba(X))
    assert_allclose(step.predict_log_proba(X), expected.predict_log_proba(X))
    assert_allclose(step.decision_function(X), expected.decision_function(X))
    assert_array_equal(step.predict(X), expected.predict(X))
    assert step.score(X, y) == expected.score(X, y)
    assert is_classifier(step)


def test_forget_step_none_keeps_the_models_values_and_sample_weight(multiclass):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    model = clone(multiclass["models"]["hessian"]).set_params(forget_scale=0.7)
    weights = np.linspace(0.5, 1.5, S.sum())
    trained = np.ones(len(y))
    trained[S] = weights  # the rows' weights in fit (heavier ones are refused)
    model.fit(X, y, sample_weight=trained)
    step = ForgetStep(model).fit(X[S], y[S], sample_weight=weights)
    expected = copy.deepcopy(model).partial_forget(X[S], y[S], sample_weight=weights)
    assert step.estimator_.forget_scale == 0.7
    assert_allclose(step.estimator_.coef_, expected.coef_)


def test_forget_step_clone_and_params(multiclass):
    model = multiclass["models"]["fisher"]
    step = ForgetStep(model, forget_scale=2.0)
    cloned = clone(step)
    assert cloned is not step and cloned.estimator is model  # still fitted
    assert cloned.forget_scale == 2.0
    assert step.get_params() == {
        "estimator": model,
        "forget_scale": 2.0,
        "leave_out": None,
    }
    with pytest.raises(ValueError, match="does not set parameters of the wrapped"):
        step.set_params(estimator__forget_scale=3.0)
    assert model.forget_scale == 1.0
    with pytest.raises(NotFittedError):
        step.predict(multiclass["X"])


def test_forget_step_validation(multiclass):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    model = multiclass["models"]["fisher"]
    with pytest.raises(InvalidParameterError, match="forget_scale"):
        ForgetStep(model, forget_scale=-1.0).fit(X[S], y[S])
    with pytest.raises(InvalidParameterError, match="estimator"):
        ForgetStep(LogisticRegression().fit(X, y)).fit(X[S], y[S])
    with pytest.raises(NotFittedError):
        ForgetStep(ErasableLogisticRegression()).fit(X[S], y[S])
    with pytest.raises(ValueError, match="labels not seen"):
        ForgetStep(model).fit(X[S], y[S] + 10)


def test_forget_step_accepts_frozen_and_meta_estimators(multiclass, multi_output):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    model = multiclass["models"]["fisher"]
    frozen = ForgetStep(FrozenEstimator(model), forget_scale=0.5).fit(X[S], y[S])
    plain = ForgetStep(model, forget_scale=0.5).fit(X[S], y[S])
    assert_allclose(frozen.estimator_.coef_, plain.estimator_.coef_)
    # On a meta-estimator the parameters are the nested ones.
    d = multi_output
    meta = ForgetStep(d["model"], forget_scale=0.5, leave_out=False)
    meta.fit(d["X"][d["S"]], d["y"][d["S"]])
    assert meta.estimator_.estimator.forget_scale == 0.5
    assert d["model"].estimator.forget_scale == 1.0
    assert d["model"].n_forgotten_ == 0
    expected = copy.deepcopy(d["model"]).set_params(
        estimator__forget_scale=0.5, estimator__leave_out=False
    )
    expected.partial_forget(d["X"][d["S"]], d["y"][d["S"]])
    assert_allclose(_theta(meta.estimator_), _theta(expected))
    assert isinstance(meta.predict_proba(d["X"]), list)


# -- scorers ---------------------------------------------------------------------------
def test_erasure_scorers_values(multiclass, multi_output):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    model, refit = multiclass["models"]["fisher"], multiclass["refit"]
    step = ForgetStep(model, forget_scale=0.3).fit(X[S], y[S])
    distance = make_erasure_scorer(
        "neg_relative_parameter_distance", refit_estimator=refit
    )
    assert isinstance(distance, ErasureScorer)
    assert "neg_relative_parameter_distance" in repr(distance)
    assert distance(step, X[S], y[S]) == pytest.approx(
        -relative_parameter_distance(step.estimator_, original=model, refit=refit)
    )
    delta = make_erasure_scorer(
        "neg_normalized_confusion_distance", refit_estimator=refit
    )
    assert delta(step, X[S], y[S]) == 0.0  # see the ForgetStep docstring
    # An updated model scored directly needs the original.
    direct = make_erasure_scorer(
        "neg_normalized_confusion_distance",
        refit_estimator=refit,
        original_estimator=model,
    )
    assert direct(step.estimator_, X[S], y[S]) == 0.0
    assert direct(model, X[S], y[S]) == -1.0
    with pytest.raises(ValueError, match="original_estimator"):
        delta(step.estimator_, X[S], y[S])

    # γ: the same as make_scorer with precomputed references on the same rows.
    d = multi_output
    XS, YS = d["X"][d["S"]], d["y"][d["S"]]
    step = ForgetStep(d["model"]).fit(XS, YS)
    gamma = make_erasure_scorer("similarity_ratio", refit_estimator=d["refit"])
    precomputed = make_scorer(
        similarity_ratio,
        response_method="predict_proba",
        y_score_original=d["model"].predict_proba(XS),
        y_score_refit=d["refit"].predict_proba(XS),
    )
    assert gamma(step, XS, YS) == pytest.approx(precomputed(step, XS, YS))
    assert 0.5 < gamma(step, XS, YS) <= 1.0


def test_make_erasure_scorer_validation(multiclass):
    refit = multiclass["refit"]
    with pytest.raises(InvalidParameterError, match="metric"):
        make_erasure_scorer("normalized_confusion_distance", refit_estimator=refit)
    with pytest.raises(InvalidParameterError, match="refit_estimator"):
        make_erasure_scorer("similarity_ratio", refit_estimator="refit")
    with pytest.raises(InvalidParameterError, match="zero_division"):
        make_erasure_scorer("similarity_ratio", refit_estimator=refit, zero_division=-1)


# -- GridSearchCV == the fast path -----------------------------------------------------
@pytest.mark.parametrize("kind", ["fisher", "hessian"])
@pytest.mark.parametrize("leave_out", [True, False])
def test_grid_search_equals_fast_path_multiclass(multiclass, kind, leave_out):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    model, refit = multiclass["models"][kind], multiclass["refit"]
    names = ["neg_normalized_confusion_distance", "neg_relative_parameter_distance"]
    scoring = {name: make_erasure_scorer(name, refit_estimator=refit) for name in names}
    search = GridSearchCV(
        ForgetStep(model, leave_out=leave_out),
        {"forget_scale": SCALES},
        scoring=scoring,
        refit=names[0],
        cv=_single_split(S),
    ).fit(X[S], y[S])
    curve = forget_scale_curve(
        model,
        X[S],
        y[S],
        refit_estimator=refit,
        forget_scales=SCALES,
        scoring=names,
        leave_out=leave_out,
    )
    for name in names:
        assert_allclose(
            search.cv_results_[f"mean_test_{name}"], curve.scores[name], rtol=1e-10
        )
    assert search.best_params_["forget_scale"] == curve.best_forget_scale
    assert search.best_index_ == curve.best_index
    assert search.best_score_ == curve.best_score
    # refit=True: the best ForgetStep forgot S with the best ε, as the curve's copy.
    best = search.best_estimator_.estimator_
    assert best.forget_scale == curve.best_forget_scale
    assert best.n_forgotten_ == curve.best_estimator.n_forgotten_ == S.sum()
    assert_allclose(best.coef_, curve.best_estimator.coef_, rtol=1e-10, atol=1e-12)
    assert_allclose(best.intercept_, curve.best_estimator.intercept_, atol=1e-12)
    assert model.n_forgotten_ == 0


def test_grid_search_equals_fast_path_multi_output(multi_output):
    d = multi_output
    XS, YS = d["X"][d["S"]], d["y"][d["S"]]
    scorer = make_erasure_scorer("similarity_ratio", refit_estimator=d["refit"])
    search = GridSearchCV(
        ForgetStep(d["model"]),
        {"forget_scale": SCALES},
        scoring=scorer,
        cv=_single_split(d["S"]),
    ).fit(XS, YS)
    curve = forget_scale_curve(
        d["model"], XS, YS, refit_estimator=d["refit"], forget_scales=SCALES
    )
    assert_allclose(search.cv_results_["mean_test_score"], curve.scores[curve.scoring])
    assert search.best_params_["forget_scale"] == curve.best_forget_scale
    assert curve.best_score > 0.5  # closer to the refit than to the original
    assert_allclose(
        _theta(search.best_estimator_.estimator_), _theta(curve.best_estimator)
    )
    assert curve.best_estimator.estimator.forget_scale == curve.best_forget_scale
    # validation_curve is the same computation, one ε at a time.
    _, test_scores = validation_curve(
        ForgetStep(d["model"]),
        XS,
        YS,
        param_name="forget_scale",
        param_range=SCALES[:3],
        scoring=scorer,
        cv=_single_split(d["S"]),
    )
    assert_allclose(test_scores[:, 0], curve.scores["similarity_ratio"][:3])


def test_grid_search_over_fitted_models_and_leave_out(multiclass):
    # Parameters that need a new fit: search over frozen fitted models.
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    models, refit = multiclass["models"], multiclass["refit"]
    search = GridSearchCV(
        ForgetStep(models["fisher"]),
        {
            "estimator": [FrozenEstimator(m) for m in models.values()],
            "forget_scale": [0.3, 1.0],
            "leave_out": [True, False],
        },
        scoring=make_erasure_scorer(
            "neg_relative_parameter_distance", refit_estimator=refit
        ),
        cv=_single_split(S),
    ).fit(X[S], y[S])
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and len(scores) == 8
    curves = {
        (kind, leave_out): forget_scale_curve(
            m,
            X[S],
            y[S],
            refit_estimator=refit,
            forget_scales=[0.3, 1.0],
            scoring="neg_relative_parameter_distance",
            leave_out=leave_out,
        )
        for kind, m in models.items()
        for leave_out in (True, False)
    }
    best = max(curves.values(), key=lambda c: c.best_score)
    assert search.best_score_ == pytest.approx(best.best_score)
    assert models["fisher"].n_forgotten_ == models["hessian"].n_forgotten_ == 0


# -- the fast path ---------------------------------------------------------------------
def test_forget_scale_curve_is_linear_in_scale(multiclass):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    model = multiclass["models"]["fisher"]
    curve = forget_scale_curve(
        model,
        X[S],
        y[S],
        refit_estimator=multiclass["refit"],
        forget_scales=[0.05, 0.2, 3.0],
        scoring="neg_relative_parameter_distance",
    )
    assert isinstance(curve, ForgetScaleCurve)
    assert "best_forget_scale=" in repr(curve)
    assert list(curve.scores) == ["neg_relative_parameter_distance"]
    direct = copy.deepcopy(model).set_params(forget_scale=curve.best_forget_scale)
    direct.partial_forget(X[S], y[S])
    assert_allclose(curve.best_estimator.coef_, direct.coef_, rtol=1e-10, atol=1e-12)
    assert curve.best_estimator.forget_scale == curve.best_forget_scale
    assert model.n_forgotten_ == 0


def test_forget_scale_curve_defaults_and_ties(multiclass):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    curve = forget_scale_curve(
        multiclass["models"]["fisher"],
        X[S],
        y[S],
        refit_estimator=multiclass["refit"],
        scoring="neg_normalized_confusion_distance",
    )
    assert_allclose(curve.forget_scales, np.logspace(-2, 2, 41))
    scores = curve.scores["neg_normalized_confusion_distance"]
    # The first of tied best values is chosen, as GridSearchCV does.
    assert curve.best_index == np.flatnonzero(scores == scores.max())[0]
    assert curve.best_score == scores.max()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"forget_scales": []}, ValueError, "non-empty"),
        ({"forget_scales": [0.1, -1.0]}, ValueError, "> 0"),
        ({"forget_scales": [np.inf]}, ValueError, "finite"),
        ({"scoring": "accuracy"}, InvalidParameterError, "scoring"),
        ({"scoring": ["similarity_ratio", "f1"]}, ValueError, "scoring"),
        ({"scoring": []}, ValueError, "scoring"),
        ({"leave_out": "yes"}, InvalidParameterError, "leave_out"),
        ({"refit_estimator": None}, InvalidParameterError, "refit_estimator"),
    ],
)
def test_forget_scale_curve_validation(multiclass, kwargs, error, match):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    params = dict(refit_estimator=multiclass["refit"], forget_scales=[1.0])
    params.update(kwargs)
    with pytest.raises(error, match=match):
        forget_scale_curve(multiclass["models"]["fisher"], X[S], y[S], **params)


class _Opaque(ClassifierMixin, BaseEstimator):
    """An erasable model that does not expose its parameters as a vector."""

    def __init__(self, forget_scale=1.0):
        self.forget_scale = forget_scale

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def partial_forget(self, X, y):
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_forget_scale_curve_needs_flat_parameters(multiclass):
    X, y, S = multiclass["X"], multiclass["y"], multiclass["S"]
    model = _Opaque().fit(X, y)
    with pytest.raises(TypeError, match="use GridSearchCV with ForgetStep"):
        forget_scale_curve(
            model, X[S], y[S], refit_estimator=multiclass["refit"], forget_scales=[1.0]
        )
    # The GridSearchCV route still works with any erasable model.
    step = ForgetStep(model, forget_scale=2.0).fit(X[S], y[S])
    assert step.estimator_.forget_scale == 2.0


def test_curve_models_keep_no_parameters_of_a_forgotten_class():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    model = ErasableLogisticRegression().fit(X, y)
    rows = y == 2
    refit = LogisticRegression().fit(X[~rows], y[~rows])
    curve = forget_scale_curve(
        model,
        X[rows],
        y[rows],
        refit_estimator=refit,
        forget_scales=[0.1, 1.0],
        scoring="neg_normalized_confusion_distance",
    )
    assert_array_equal(curve.best_estimator.coef_[2], 0)
    assert curve.best_estimator.intercept_[2] == 0
