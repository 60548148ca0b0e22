"""The paper's erasure scores (γ, δ), the parameter distance and the report."""

import copy
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.datasets import load_wine, make_multilabel_classification
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, log_loss, roc_auc_score
from sklearn.multioutput import MultiOutputClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.metrics import (
    ErasureReport,
    _per_output_auc,
    erasure_report,
    normalized_confusion_distance,
    relative_parameter_distance,
    similarity_ratio,
)
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier


# -- γ ---------------------------------------------------------------------------------
def test_similarity_ratio_hand_computed_binary():
    y = [0, 0, 1, 1]
    original = [0.1, 0.2, 0.8, 0.9]  # AUC 1
    refit = [0.1, 0.9, 0.8, 0.2]  # AUC 1/2
    updated = [0.1, 0.6, 0.6, 0.2]  # AUC 5/8 (one tie counts 1/2)
    # D(θ̂, θ*) = 3/8, D(θ̂, θ_{-S}) = 1/8
    gamma = similarity_ratio(y, updated, y_score_original=original, y_score_refit=refit)
    assert gamma == pytest.approx(0.75)
    # The extremes.
    assert similarity_ratio(
        y, original, y_score_original=original, y_score_refit=refit
    ) == pytest.approx(0.0)
    assert similarity_ratio(
        y, refit, y_score_original=original, y_score_refit=refit
    ) == pytest.approx(1.0)


def test_similarity_ratio_hand_computed_multi_output_and_formats():
    # Output 0: AUCs 1, 1/2, 3/4. Output 1: a single class on S, AUC 0 for all.
    # Output 2: AUCs 1/2 (original), 0 (refit), 0 (updated).
    Y = np.array([[0, 1, 1], [0, 1, 0], [1, 1, 1], [1, 1, 0]])
    original = np.array(
        [[0.1, 0.3, 0.6], [0.2, 0.4, 0.4], [0.8, 0.5, 0.4], [0.9, 0.6, 0.6]]
    )
    refit = np.array(
        [[0.1, 0.1, 0.1], [0.9, 0.2, 0.9], [0.8, 0.3, 0.2], [0.2, 0.4, 0.8]]
    )
    updated = np.array(
        [[0.1, 0.9, 0.1], [0.7, 0.8, 0.9], [0.8, 0.7, 0.2], [0.3, 0.6, 0.8]]
    )
    # D(θ̂, θ*) = |3/4 - 1| + 0 + |0 - 1/2| = 3/4; D(θ̂, θ_{-S}) = 1/4 + 0 + 0.
    expected = 0.75 / (0.75 + 0.25)
    gamma = similarity_ratio(Y, updated, y_score_original=original, y_score_refit=refit)
    assert gamma == pytest.approx(expected)

    def as_list(P):  # what MultiOutputClassifier.predict_proba returns
        return [np.column_stack([1 - P[:, j], P[:, j]]) for j in range(P.shape[1])]

    assert similarity_ratio(
        Y,
        as_list(updated),
        y_score_original=as_list(original),
        y_score_refit=np.asarray(as_list(refit)),  # (n_outputs, n, 2)
    ) == pytest.approx(expected)


def test_similarity_ratio_binary_formats_and_labels():
    y = np.array(["no", "no", "yes", "yes"])  # the greater label is positive
    original = np.array([0.1, 0.2, 0.8, 0.9])
    refit = np.array([0.1, 0.9, 0.8, 0.2])
    updated = np.array([0.1, 0.6, 0.6, 0.2])
    proba = np.column_stack([1 - updated, updated])
    assert similarity_ratio(
        y, proba, y_score_original=original, y_score_refit=refit[:, None]
    ) == pytest.approx(0.75)
    # Any monotone score works, infinite ones included.
    assert similarity_ratio(
        y,
        np.array([-np.inf, 0.6, 0.6, 0.2]),
        y_score_original=np.array([-1.0, 0.0, np.inf, np.inf]),
        y_score_refit=refit,
    ) == pytest.approx(0.75)


def test_auc_by_ranks_equals_roc_auc_score():
    rng = np.random.default_rng(0)
    Y = rng.integers(0, 2, size=(50, 4))
    scores = rng.integers(0, 5, size=(50, 4)).astype(float)  # many ties
    expected = [roc_auc_score(Y[:, j], scores[:, j]) for j in range(4)]
    assert_allclose(_per_output_auc(Y, scores), expected)
    Y[:, 2] = 1  # one class: 0 by convention
    assert _per_output_auc(Y, scores)[2] == 0.0


@pytest.mark.parametrize(
    "zero_division, expected", [(0.0, 0.0), (1.0, 1.0), (0.25, 0.25), (np.nan, np.nan)]
)
def test_zero_division_given(zero_division, expected):
    y = [0, 1, 1]
    same = [0.2, 0.5, 0.9]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gamma = similarity_ratio(
            y,
            same,
            y_score_original=same,
            y_score_refit=same,
            zero_division=zero_division,
        )
        delta = normalized_confusion_distance(
            y, y, y_pred_original=y, y_pred_refit=y, zero_division=zero_division
        )
    assert_allclose([gamma, delta], [expected, expected])


def test_zero_division_warns_and_returns_one_half():
    y = [0, 1, 1]
    with pytest.warns(UndefinedMetricWarning, match="0/0"):
        gamma = similarity_ratio(
            y, [0, 1, 1], y_score_original=[0, 1, 1], y_score_refit=[0, 1, 1]
        )
    with pytest.warns(UndefinedMetricWarning, match="0/0"):
        delta = normalized_confusion_distance(
            y, [0, 1, 0], y_pred_original=[0, 1, 0], y_pred_refit=[0, 1, 0]
        )
    assert gamma == delta == 0.5
    # S holding one class of every output makes every AUC 0: also 0/0.
    with pytest.warns(UndefinedMetricWarning):
        similarity_ratio(
            [1, 1], [0.1, 0.2], y_score_original=[0.3, 0.1], y_score_refit=[0.5, 0.5]
        )


def test_ratio_is_one_half_when_references_agree():
    # The continuity argument behind the 0/0 convention.
    y = [0, 0, 1, 1]
    reference = [0.1, 0.2, 0.8, 0.9]
    gamma = similarity_ratio(
        y, [0.9, 0.2, 0.8, 0.1], y_score_original=reference, y_score_refit=reference
    )
    assert gamma == 0.5


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"zero_division": "bad"}, InvalidParameterError, "zero_division"),
        ({"zero_division": 2.0}, InvalidParameterError, "zero_division"),
        ({"y_score_refit": 3.0}, InvalidParameterError, "y_score_refit"),
        ({"y_true": [0, 1, 2, 2]}, ValueError, "multiclass"),
        ({"y_score": [0.1, 0.2, 0.3]}, ValueError, "shape"),
        ({"y_score_refit": [0.1, 0.2, 0.3]}, ValueError, "y_score_refit.*shape"),
        ({"y_score": [0.1, np.nan, 0.3, 0.4]}, ValueError, "NaN"),
        ({"y_score": np.ones((4, 3))}, ValueError, "shape"),
    ],
)
def test_similarity_ratio_validation(kwargs, error, match):
    params = dict(
        y_true=[0, 0, 1, 1],
        y_score=[0.1, 0.2, 0.3, 0.4],
        y_score_original=[0.1, 0.2, 0.3, 0.4],
        y_score_refit=[0.4, 0.3, 0.2, 0.1],
    )
    params.update(kwargs)
    with pytest.raises(error, match=match):
        similarity_ratio(**params)


# -- δ ---------------------------------------------------------------------------------
def test_normalized_confusion_distance_hand_computed():
    # Docstring case: one true class; rows of the matrices are the predictions.
    delta = normalized_confusion_distance(
        [2, 2, 2, 2],
        [0, 1, 2, 1],
        y_pred_original=[2, 2, 2, 2],
        y_pred_refit=[0, 1, 1, 0],
        labels=[0, 1, 2],
    )
    assert delta == pytest.approx(2 / 8)
    # Three true classes: Sd(θ̂, θ_{-S}) = 2, Sd(θ̂, θ*) = 4.
    y_true = [0, 0, 1, 1, 2]
    original = [0, 0, 1, 1, 2]
    refit = [0, 1, 1, 1, 0]
    updated = [0, 1, 1, 1, 1]
    delta = normalized_confusion_distance(
        y_true, updated, y_pred_original=original, y_pred_refit=refit
    )
    assert delta == pytest.approx(1 / 3)
    assert normalized_confusion_distance(
        y_true, refit, y_pred_original=original, y_pred_refit=refit
    ) == pytest.approx(0.0)
    assert normalized_confusion_distance(
        y_true, original, y_pred_original=original, y_pred_refit=refit
    ) == pytest.approx(1.0)


def test_normalized_confusion_distance_equals_confusion_matrix_definition():
    rng = np.random.default_rng(0)
    labels = np.array(["a", "b", "c", "d"])
    y_true, updated, original, refit = rng.choice(labels[:3], size=(4, 40))
    matrices = [
        confusion_matrix(y_true, pred, labels=labels)
        for pred in (updated, original, refit)
    ]
    to_refit = np.abs(matrices[0] - matrices[2]).sum()
    to_original = np.abs(matrices[0] - matrices[1]).sum()
    delta = normalized_confusion_distance(
        y_true, updated, y_pred_original=original, y_pred_refit=refit, labels=labels
    )
    assert delta == pytest.approx(to_refit / (to_refit + to_original))
    # A label nobody uses changes nothing; None collects the labels present.
    assert delta == pytest.approx(
        normalized_confusion_distance(
            y_true, updated, y_pred_original=original, y_pred_refit=refit
        )
    )


def test_normalized_confusion_distance_predictions_outside_labels():
    # The refit predicts a label outside ``labels``: it still counts as different.
    delta = normalized_confusion_distance(
        [0, 1], [0, 1], y_pred_original=[0, 1], y_pred_refit=[0, 2], labels=[0, 1]
    )
    assert delta == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"zero_division": "nope"}, InvalidParameterError, "zero_division"),
        ({"labels": "abc"}, InvalidParameterError, "labels"),
        ({"labels": []}, ValueError, "non-empty"),
        ({"y_pred_refit": [0, 1]}, ValueError, "inconsistent"),
        ({"y_pred": [[0, 1], [1, 0], [0, 0]]}, ValueError, "shape|1d"),
    ],
)
def test_normalized_confusion_distance_validation(kwargs, error, match):
    params = dict(
        y_true=[0, 1, 2],
        y_pred=[0, 1, 1],
        y_pred_original=[0, 1, 2],
        y_pred_refit=[0, 2, 1],
    )
    params.update(kwargs)
    with pytest.raises(error, match=match):
        normalized_confusion_distance(**params)


# -- parameter distance ----------------------------------------------------------------
def test_relative_parameter_distance_vectors():
    assert relative_parameter_distance(
        [1.5, 2.0], original=[0, 0], refit=[3, 4]
    ) == pytest.approx(0.5)
    assert relative_parameter_distance([1, 2], original=[1, 2], refit=[1, 2]) == 0.0
    assert relative_parameter_distance([1, 3], original=[1, 2], refit=[1, 2]) == np.inf
    with pytest.raises(ValueError, match="inconsistent"):
        relative_parameter_distance([1, 2, 3], original=[1, 2], refit=[1, 2])


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _flat(model, rows=slice(None)):
    return np.hstack([model.coef_[rows], model.intercept_[rows, None]]).ravel()


def test_relative_parameter_distance_estimators(wine):
    X, y = wine
    binary = y < 2
    Xb, yb = X[binary], y[binary]
    models = [LogisticRegression(C=c).fit(Xb, yb) for c in (0.1, 1.0, 10.0)]
    vectors = [_flat(m) for m in models]
    assert relative_parameter_distance(
        models[0], original=models[1], refit=models[2]
    ) == pytest.approx(
        relative_parameter_distance(vectors[0], original=vectors[1], refit=vectors[2])
    )
    # A multiclass refit without class 2: only the rows of classes 0 and 1 count.
    original = LogisticRegression().fit(X, y)
    updated = LogisticRegression(C=0.5).fit(X, y)
    refit = LogisticRegression().fit(X[y < 2], y[y < 2])
    three = LogisticRegression().fit(X, y + 1)  # classes 1, 2, 3: two in common
    refit_mc = LogisticRegression().fit(np.r_[X, X[:5]], np.r_[y, [3] * 5])
    assert relative_parameter_distance(
        updated, original=original, refit=refit_mc
    ) == pytest.approx(
        np.linalg.norm(_flat(updated) - _flat(refit_mc, slice(0, 3)))
        / np.linalg.norm(_flat(original) - _flat(refit_mc, slice(0, 3)))
    )
    with pytest.raises(ValueError, match="binary"):
        relative_parameter_distance(updated, original=original, refit=refit)
    assert np.isfinite(
        relative_parameter_distance(updated, original=original, refit=three)
    )
    with pytest.raises(TypeError, match="either"):
        relative_parameter_distance(updated, original=original, refit=_flat(original))


def test_relative_parameter_distance_multi_output():
    X, Y = make_multilabel_classification(n_samples=80, n_features=5, random_state=0)
    X = StandardScaler().fit_transform(X)
    models = [
        MultiOutputClassifier(LogisticRegression(C=c)).fit(X, Y)
        for c in (0.1, 1.0, 10.0)
    ]
    vectors = [np.concatenate([_flat(e) for e in m.estimators_]) for m in models]
    assert relative_parameter_distance(
        models[0], original=models[1], refit=models[2]
    ) == pytest.approx(
        relative_parameter_distance(vectors[0], original=vectors[1], refit=vectors[2])
    )


# -- the report ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wine_deletion(wine):
    X, y = wine
    rng = np.random.default_rng(0)
    test = rng.random(len(y)) < 0.3
    X_train, y_train, X_test, y_test = X[~test], y[~test], X[test], y[test]
    forget = (y_train == 1) & (rng.random(len(y_train)) < 0.5)
    original = ErasableLogisticRegression(curvature="hessian").fit(X_train, y_train)
    refit = LogisticRegression().fit(X_train[~forget], y_train[~forget])
    updated = copy.deepcopy(original).partial_forget(X_train[forget], y_train[forget])
    return dict(
        models=(original, updated, refit),
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        forget=forget,
    )


def test_erasure_report_values(wine_deletion):
    d = wine_deletion
    original, updated, refit = d["models"]
    forget, X, y = d["forget"], d["X_train"], d["y_train"]
    erased = d["y_test"] == 1
    report = erasure_report(
        updated,
        X[forget],
        y[forget],
        original=original,
        refit=refit,
        X_remaining=X[~forget],
        y_remaining=y[~forget],
        X_test=d["X_test"],
        y_test=d["y_test"],
        test_erased=erased,
    )
    assert isinstance(report, ErasureReport) and isinstance(report, dict)
    assert list(report) == ["original", "updated", "refit"]
    assert report.metric == "normalized_confusion_distance"
    assert report.n_forgotten == forget.sum()
    splits = {
        "remaining": (X[~forget], y[~forget]),
        "forgotten": (X[forget], y[forget]),
        "test_kept": (d["X_test"][~erased], d["y_test"][~erased]),
        "test_erased": (d["X_test"][erased], d["y_test"][erased]),
    }
    for name, model in zip(report, d["models"]):
        row = report[name]
        for split, (Xs, ys) in splits.items():
            assert row[f"accuracy_{split}"] == pytest.approx(model.score(Xs, ys))
            assert row[f"log_loss_{split}"] == pytest.approx(
                log_loss(ys, model.predict_proba(Xs), labels=model.classes_)
            )
        losses = [
            -np.log(model.predict_proba(Xs)[np.arange(len(ys)), ys])
            for Xs, ys in (splits["forgotten"], splits["test_erased"])
        ]
        member = np.r_[np.ones(len(losses[0])), np.zeros(len(losses[1]))]
        assert row["membership_auc"] == pytest.approx(
            roc_auc_score(member, -np.concatenate(losses))
        )
    assert report["original"]["parameter_distance"] == pytest.approx(1.0)
    assert report["refit"]["parameter_distance"] == 0.0
    assert report["updated"]["parameter_distance"] < 0.5
    delta = [report[name]["normalized_confusion_distance"] for name in report]
    assert delta[0] == 1.0 and delta[2] == 0.0 and 0 <= delta[1] <= 1
    text = str(report)
    assert text == repr(report)
    assert f"{forget.sum()} rows forgotten" in text
    assert "test rows of the erased group" in text
    for label in ("remaining train", "membership AUC", "confusion distance δ"):
        assert label in text


def test_erasure_report_optional_splits_and_errors(wine_deletion):
    d = wine_deletion
    original, updated, refit = d["models"]
    forget, X, y = d["forget"], d["X_train"], d["y_train"]
    report = erasure_report(
        updated, X[forget], y[forget], original=original, refit=refit
    )
    assert np.isnan(report["updated"]["accuracy_remaining"])
    assert np.isnan(report["updated"]["membership_auc"])
    assert report["updated"]["accuracy_forgotten"] == updated.score(
        X[forget], y[forget]
    )
    assert "no test rows given" in str(report)
    # Without an erased group, the attack uses every test row.
    report = erasure_report(
        updated,
        X[forget],
        y[forget],
        original=original,
        refit=refit,
        X_test=d["X_test"],
        y_test=d["y_test"],
    )
    assert np.isnan(report["updated"]["accuracy_test_erased"])
    assert report.membership_reference == "all test rows"
    with pytest.raises(ValueError, match="y_test"):
        erasure_report(
            updated, X[forget], y[forget], original=original, refit=refit, X_test=X
        )
    with pytest.raises(InvalidParameterError, match="metric"):
        erasure_report(
            updated, X[forget], y[forget], original=original, refit=refit, metric="f1"
        )
    with pytest.raises(InvalidParameterError, match="refit"):
        erasure_report(updated, X[forget], y[forget], original=original, refit="refit")


def test_erasure_report_full_class_removal(wine):
    # The refit never saw class 2: it gets probability 0 (clipped in the loss), the
    # parameter distance compares the rows of classes 0 and 1, δ is defined.
    X, y = wine
    forget = y == 2
    original = ErasableLogisticRegression(curvature="hessian").fit(X, y)
    refit = LogisticRegression().fit(X[~forget], y[~forget])
    three = LogisticRegression(C=0.5).fit(X, y)
    updated = copy.deepcopy(original).partial_forget(X[forget], y[forget])
    with pytest.raises(ValueError, match="binary"):
        relative_parameter_distance(updated, original=original, refit=refit)
    report = erasure_report(
        updated, X[forget], y[forget], original=original, refit=refit
    )
    assert report["refit"]["accuracy_forgotten"] == 0.0
    assert report["updated"]["accuracy_forgotten"] == 0.0  # the class is cut off
    assert np.isfinite(report["refit"]["log_loss_forgotten"])
    assert np.isnan(report["updated"]["parameter_distance"])  # binary vs 3 classes
    assert report["refit"]["normalized_confusion_distance"] == 0.0
    assert report["original"]["normalized_confusion_distance"] == 1.0
    report = erasure_report(
        updated, X[forget], y[forget], original=original, refit=three
    )
    assert np.isfinite(report["updated"]["parameter_distance"])


def test_erasure_report_multi_output():
    X, Y = make_multilabel_classification(
        n_samples=120, n_features=6, n_classes=4, random_state=0
    )
    group = Y[:, 0] == 1
    Y = Y[:, 1:]  # label 0 marks the group; the model predicts the others
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression(max_iter=1000))
    original = clone(model).fit(X, Y)
    refit = clone(model).fit(X[~group], Y[~group])
    updated = copy.deepcopy(original).partial_forget(X[group], Y[group])
    report = erasure_report(
        updated,
        X[group],
        Y[group],
        original=original,
        refit=refit,
        X_remaining=X[~group],
        y_remaining=Y[~group],
        X_test=X[:30],
        y_test=Y[:30],
    )
    assert report.metric == "similarity_ratio"
    assert "similarity ratio γ" in str(report)
    assert report["refit"]["similarity_ratio"] == 1.0
    assert report["original"]["similarity_ratio"] == 0.0
    assert 0 <= report["updated"]["similarity_ratio"] <= 1
    accuracy = np.mean(
        [e.score(X[group], Y[group, j]) for j, e in enumerate(updated.estimators_)]
    )
    assert report["updated"]["accuracy_forgotten"] == pytest.approx(accuracy)
    losses = np.mean(
        [
            log_loss(Y[group, j], e.predict_proba(X[group]), labels=[0, 1])
            for j, e in enumerate(updated.estimators_)
        ]
    )
    assert report["updated"]["log_loss_forgotten"] == pytest.approx(losses)
    assert np.isfinite(report["updated"]["parameter_distance"])


def test_old_argument_order_still_works_with_a_warning(wine_deletion):
    d = wine_deletion
    original, updated, refit = d["models"]
    forget, X, y = d["forget"], d["X_train"], d["y_train"]
    new = relative_parameter_distance(updated, original=original, refit=refit)
    with pytest.warns(FutureWarning, match="keyword-only"):
        assert relative_parameter_distance(updated, original, refit) == new
    expected = erasure_report(
        updated, X[forget], y[forget], original=original, refit=refit
    )
    with pytest.warns(FutureWarning, match=r"erasure_report\(updated, X_forgotten"):
        old = erasure_report(original, updated, refit, X[forget], y[forget])
    assert str(old) == str(expected)
    with pytest.raises(TypeError, match="keyword"):
        relative_parameter_distance(updated, original)
    with pytest.raises(TypeError, match="original= and refit="):
        relative_parameter_distance(updated, original=original)
    with pytest.raises(TypeError, match="original= and refit="):
        erasure_report(updated, X[forget], y[forget], original=original)
