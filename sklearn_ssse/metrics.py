"""How well an update erased rows: the paper's two scores and an erasure report.

Every score compares three models on the forgotten rows ``S``: the **updated** model
``θ̂`` (after :meth:`~sklearn_ssse.base.ErasableMixin.partial_forget`), the
**original** model ``θ*`` and the **refit** reference ``θ_{-S}`` (the same estimator
fitted again without ``S``), as in ``METHOD.md``, "Measuring erasure".

- :func:`similarity_ratio` (γ, the paper's eq. 9–10) for binary and multi-output
  binary models, from per-output ROC-AUC on ``S``. Higher is better; 1 means the
  updated model ranks ``S`` exactly as the refit does.
- :func:`normalized_confusion_distance` (δ, eq. 11–12) for multiclass (or binary)
  models, from confusion matrices on ``S``. Lower is better; 0 means the updated
  model classifies ``S`` exactly as the refit does.
- :func:`relative_parameter_distance`: ``‖θ̂ − θ_{-S}‖ / ‖θ* − θ_{-S}‖``.
- :func:`erasure_report`: the paper's Table 1 for one deletion.

**One argument order.** As in scikit-learn's metrics (``y_true, y_pred``), the
thing judged comes first: the updated model (or its scores or predictions), then
the forgotten rows where they are needed; the two references are keyword-only
(``original=``, ``refit=``, or ``y_score_original=``, ``y_pred_refit=``, ...).
The older positional forms of :func:`relative_parameter_distance` and
:func:`erasure_report` still work with a ``FutureWarning``.

**When γ or δ is undefined.** Both are ratios ``a / (a + b)`` of two distances from
the updated model, to the original and to the refit. The denominator vanishes only
when the updated model behaves on ``S`` exactly like both references, which implies
that the original and the refit behave identically on ``S`` (triangle inequality):
the deletion is then invisible to the score. In that case ``a = b`` for *every*
updated model with a non-zero denominator, so the ratio is 0.5 everywhere else, and
0.5 is its only continuous extension. The functions therefore return 0.5 and warn
(``zero_division="warn"``, the default), or return the value given as
``zero_division`` (a number in [0, 1], or ``np.nan``) without warning.
"""

import warnings
from numbers import Real

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_consistent_length, column_or_1d

from . import _array_api
from ._array_api import to_numpy as _host  # scores are computed on the host

__all__ = [
    "ErasureReport",
    "erasure_report",
    "normalized_confusion_distance",
    "relative_parameter_distance",
    "similarity_ratio",
]

_ZERO_DIVISION = [StrOptions({"warn"}), Interval(Real, 0, 1, closed="both"), "nan"]


# -- γ: the similarity ratio -----------------------------------------------------------
def _as_2d_labels(y_true):
    """``y_true`` as a 2-D array (n_samples, n_outputs) of 0/1 and its ndim."""
    y = np.asarray(_host(y_true))
    if y.ndim not in (1, 2):
        raise ValueError(f"y_true must be 1-D or 2-D, got shape {y.shape}")
    columns = y.reshape(len(y), -1)
    out = np.zeros(columns.shape, dtype=np.int8)
    # A loop over outputs (not samples): each output has its own two labels.
    for j in range(columns.shape[1]):
        labels = np.unique(columns[:, j])
        if len(labels) > 2:
            raise ValueError(
                "similarity_ratio needs binary outputs (the paper's multi-attribute "
                f"setting), but output {j} of y_true has {len(labels)} classes; use "
                "normalized_confusion_distance for multiclass models"
            )
        # The greater label is the positive class, as in roc_auc_score.
        out[:, j] = columns[:, j] == labels[-1] if len(labels) == 2 else 0
    return out, y.ndim


def _as_2d_scores(y_score, n_samples, n_outputs, name):
    """Scores of the positive class of every output as (n_samples, n_outputs).

    Accepts what classifiers return: ``(n,)`` or ``(n, 2)`` (``predict_proba`` of
    a binary model) for one output; a list of ``n_outputs`` arrays of shape
    ``(n,)`` or ``(n, 2)`` (``predict_proba`` of ``MultiOutputClassifier``) or an
    ``(n, n_outputs)`` array for several.
    """
    if (
        isinstance(y_score, (list, tuple))
        and len(y_score)
        and not np.isscalar(y_score[0])
    ):
        parts = [np.asarray(_host(part), dtype=np.float64) for part in y_score]
        scores = np.column_stack(
            [part if part.ndim == 1 else part[:, -1] for part in parts]
        )
    else:
        scores = np.asarray(_host(y_score), dtype=np.float64)
        if scores.ndim == 3:  # np.asarray of a list of (n, 2) probabilities
            scores = scores[:, :, -1].T
        elif scores.ndim == 1:
            scores = scores[:, None]
        elif n_outputs == 1 and scores.ndim == 2 and scores.shape[1] == 2:
            scores = scores[:, -1:]
    if scores.shape != (n_samples, n_outputs):
        raise ValueError(
            f"{name} should hold the scores of {n_outputs} output(s) for "
            f"{n_samples} samples; got shape {scores.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError(f"{name} contains NaN")
    return scores


def _per_output_auc(Y, scores):
    """ROC-AUC of every column, 0 where the column of ``Y`` holds one class.

    The Mann–Whitney form with average ranks equals :func:`roc_auc_score` (ties
    count one half) for all columns at once, and accepts ``±inf`` scores.
    """
    ranks = rankdata(scores, axis=0)
    n_pos = Y.sum(axis=0, dtype=np.float64)
    n_neg = len(Y) - n_pos
    rank_sums = (ranks * Y).sum(axis=0)
    defined = (n_pos > 0) & (n_neg > 0)
    auc = np.zeros(Y.shape[1])
    auc[defined] = (rank_sums[defined] - n_pos[defined] * (n_pos[defined] + 1) / 2) / (
        n_pos[defined] * n_neg[defined]
    )
    return auc


def _ratio(numerator, other, zero_division, name):
    total = numerator + other
    if total > 0:
        return float(numerator / total)
    if zero_division == "warn":
        warnings.warn(
            f"{name} is 0/0: the updated, original and refit models behave "
            "identically on the forgotten rows, so the original and the refit do "
            "too and the score cannot tell them apart; returning 0.5. Set "
            "zero_division to choose the value and silence this warning.",
            UndefinedMetricWarning,
            stacklevel=4,
        )
        return 0.5
    return float(zero_division)


@validate_params(
    {
        "y_true": ["array-like"],
        "y_score": ["array-like"],
        "y_score_original": ["array-like"],
        "y_score_refit": ["array-like"],
        "zero_division": _ZERO_DIVISION,
    },
    prefer_skip_nested_validation=True,
)
def similarity_ratio(
    y_true, y_score, *, y_score_original, y_score_refit, zero_division="warn"
):
    """Similarity ratio γ between an updated model and the original and refit ones.

    With ``A_j(θ)`` the ROC-AUC of output ``j`` on the forgotten rows ``S``
    (0 by convention where ``S`` holds a single class of output ``j``) and
    ``D(θ₁, θ₂) = Σ_j |A_j(θ₁) − A_j(θ₂)|``, the paper's eq. 9–10::

        γ = D(θ̂, θ*) / (D(θ̂, θ*) + D(θ̂, θ_{-S}))  ∈ [0, 1]

    γ = 1: the updated model ``θ̂`` has the refit's AUCs on ``S``; γ = 0: the
    original's. Higher is better. Read more in ``METHOD.md``, "Measuring erasure".

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Labels of the forgotten rows. 1-D: one binary output; 2-D: one binary
        output per column (e.g. a multilabel indicator matrix). In every output
        the greater label is the positive class.

    y_score : array-like or list of array-like
        Scores of the positive class given by the **updated** model, typically
        ``predict_proba``: shape ``(n_samples,)`` or ``(n_samples, 2)`` for one
        output; for several, ``(n_samples, n_outputs)`` or a list of
        ``n_outputs`` arrays of shape ``(n_samples, 2)`` (what
        ``MultiOutputClassifier.predict_proba`` returns). Any monotone score
        works, including ``±inf``; NaN is refused.

    y_score_original : array-like or list of array-like
        The same for the original model (before the update).

    y_score_refit : array-like or list of array-like
        The same for the reference refitted without the forgotten rows.

    zero_division : "warn", float in [0, 1] or np.nan, default="warn"
        Value returned when both distances are 0 (then the original and the refit
        have the same AUCs on ``S``). ``"warn"`` returns 0.5, the ratio's value
        for every other updated model in that case, and warns.

    Returns
    -------
    gamma : float
        The similarity ratio, in [0, 1].

    See Also
    --------
    normalized_confusion_distance : The multiclass counterpart (lower is better).
    sklearn_ssse.model_selection.make_erasure_scorer : γ as a scorer for
        :class:`~sklearn.model_selection.GridSearchCV`.

    Notes
    -----
    The AUCs are computed on ``S`` only, where original and refit differ most:
    ``S`` was training data for one and unseen data for the other. Where ``S``
    holds one class of an output (e.g. the attribute that defines a fully
    removed group) that output's AUC is 0 for every model and does not count.

    Examples
    --------
    >>> from sklearn_ssse.metrics import similarity_ratio
    >>> y_true = [0, 0, 1, 1]
    >>> original = [0.1, 0.2, 0.8, 0.9]  # AUC 1.0
    >>> refit = [0.1, 0.9, 0.8, 0.2]     # AUC 0.5
    >>> updated = [0.1, 0.6, 0.6, 0.2]   # AUC 0.625 (a tie counts 1/2)
    >>> similarity_ratio(y_true, updated,
    ...                  y_score_original=original, y_score_refit=refit)
    0.75
    """
    Y, _ = _as_2d_labels(y_true)
    n_samples, n_outputs = Y.shape
    aucs = [
        _per_output_auc(Y, _as_2d_scores(scores, n_samples, n_outputs, name))
        for scores, name in (
            (y_score, "y_score"),
            (y_score_original, "y_score_original"),
            (y_score_refit, "y_score_refit"),
        )
    ]
    to_original = np.abs(aucs[0] - aucs[1]).sum()
    to_refit = np.abs(aucs[0] - aucs[2]).sum()
    return _ratio(to_original, to_refit, zero_division, "similarity_ratio")


# -- δ: the normalized confusion distance ----------------------------------------------
@validate_params(
    {
        "y_true": ["array-like"],
        "y_pred": ["array-like"],
        "y_pred_original": ["array-like"],
        "y_pred_refit": ["array-like"],
        "labels": ["array-like", None],
        "zero_division": _ZERO_DIVISION,
    },
    prefer_skip_nested_validation=True,
)
def normalized_confusion_distance(
    y_true,
    y_pred,
    *,
    y_pred_original,
    y_pred_refit,
    labels=None,
    zero_division="warn",
):
    """Normalized confusion distance δ between an updated model and the references.

    With ``M(θ)`` the confusion matrix of a model on the forgotten rows ``S``
    (counts, over the original model's classes) and
    ``Sd(θ₁, θ₂) = Σ_ab |M(θ₁)_ab − M(θ₂)_ab|``, the paper's eq. 11–12::

        δ = Sd(θ̂, θ_{-S}) / (Sd(θ̂, θ*) + Sd(θ̂, θ_{-S}))  ∈ [0, 1]

    δ = 0: the updated model ``θ̂`` classifies ``S`` exactly as the refit; δ = 1:
    exactly as the original; δ < 0.5: closer to the refit. Lower is better.
    Read more in ``METHOD.md``, "Measuring erasure".

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Labels of the forgotten rows.

    y_pred : array-like of shape (n_samples,)
        Labels predicted by the **updated** model.

    y_pred_original : array-like of shape (n_samples,)
        Labels predicted by the original model.

    y_pred_refit : array-like of shape (n_samples,)
        Labels predicted by the reference refitted without the forgotten rows.

    labels : array-like of shape (n_classes,), default=None
        The classes indexing the confusion matrices; pass the original model's
        ``classes_`` so that a class the refit never saw still has its row and
        column. ``None``: every label that appears in the four arrays. Rows whose
        true label is not in ``labels`` are ignored (as in
        :func:`~sklearn.metrics.confusion_matrix`); predictions outside ``labels``
        are counted in one extra column.

    zero_division : "warn", float in [0, 1] or np.nan, default="warn"
        Value returned when both distances are 0 (then the original and the refit
        predict the same confusion matrix on ``S``). ``"warn"`` returns 0.5, the
        ratio's value for every other updated model in that case, and warns.

    Returns
    -------
    delta : float
        The normalized confusion distance, in [0, 1].

    See Also
    --------
    similarity_ratio : The multi-output binary counterpart (higher is better).
    sklearn_ssse.model_selection.make_erasure_scorer : −δ as a scorer for
        :class:`~sklearn.model_selection.GridSearchCV`.

    Notes
    -----
    The paper compares confusion matrices rather than accuracies because it is
    easy to make a model misclassify ``S`` (e.g. by cutting a class off), but hard
    to make it misclassify ``S`` *the way the refit does*. Only the predictions
    matter: the true labels fix the rows of the matrices and cancel otherwise.

    Examples
    --------
    >>> from sklearn_ssse.metrics import normalized_confusion_distance
    >>> y_true = [2, 2, 2, 2]
    >>> original = [2, 2, 2, 2]   # the forgotten class is still recognised
    >>> refit = [0, 1, 1, 0]      # the refit never saw class 2
    >>> updated = [0, 1, 2, 1]    # Sd to the refit: 2, to the original: 6
    >>> normalized_confusion_distance(y_true, updated, labels=[0, 1, 2],
    ...                               y_pred_original=original,
    ...                               y_pred_refit=refit)
    0.25
    """
    check_consistent_length(y_true, y_pred, y_pred_original, y_pred_refit)
    arrays = [
        column_or_1d(_host(y), warn=False)
        for y in (y_true, y_pred, y_pred_original, y_pred_refit)
    ]
    if labels is None:
        labels = unique_labels(*arrays)
    labels = np.asarray(_host(labels))
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError("labels must be a non-empty 1-D array")
    codes = [_encode(y, labels) for y in arrays]
    # Rows whose true label is not in ``labels`` are ignored, as in confusion_matrix;
    # predictions outside ``labels`` fall in an extra column.
    n_labels = len(labels)
    kept = codes[0] < n_labels
    updated, original, refit = (
        np.bincount(
            codes[0][kept] * (n_labels + 1) + code[kept],
            minlength=n_labels * (n_labels + 1),
        )
        for code in codes[1:]
    )
    to_refit = np.abs(updated - refit).sum()
    to_original = np.abs(updated - original).sum()
    return _ratio(to_refit, to_original, zero_division, "normalized_confusion_distance")


def _encode(y, labels):
    """Index of every entry of ``y`` in ``labels``; ``len(labels)`` where absent."""
    sorter = np.argsort(labels, kind="stable")
    position = np.searchsorted(labels, y, sorter=sorter)
    position = sorter[np.clip(position, 0, len(labels) - 1)]
    return np.where(labels[position] == y, position, len(labels))


# -- parameters ------------------------------------------------------------------------
def _linear_parts(model):
    """The ``(coef (rows, m), intercept (rows,), row classes or None)`` of a model."""
    coef = np.atleast_2d(np.asarray(_host(model.coef_), dtype=np.float64))
    intercept = np.broadcast_to(
        np.asarray(_host(model.intercept_), dtype=np.float64), (coef.shape[0],)
    )
    classes = _host(getattr(model, "classes_", None))
    row_classes = None
    if classes is not None and len(classes) == coef.shape[0] and len(classes) > 2:
        row_classes = np.asarray(classes)
    return coef, intercept, row_classes


def _aligned_parameters(models):
    """Flat parameter vectors of fitted linear models, aligned on common classes.

    A multiclass refit that never saw a forgotten class has one row of ``coef_``
    fewer: rows are compared for the classes every model has. Meta-estimators with
    ``estimators_`` (one model per output) are compared output by output.
    """
    if all(hasattr(m, "estimators_") and not hasattr(m, "coef_") for m in models):
        per_output = [
            _aligned_parameters(subs)
            for subs in zip(*(m.estimators_ for m in models), strict=True)
        ]
        return [np.concatenate(vectors) for vectors in zip(*per_output)]
    parts = []
    for model in models:
        if not hasattr(model, "coef_"):
            raise TypeError(
                f"{type(model).__name__} has no coef_ (and no estimators_ of models "
                "with coef_): pass parameter vectors instead"
            )
        parts.append(_linear_parts(model))
    row_classes = [classes for _, _, classes in parts]
    if any(classes is not None for classes in row_classes):
        if any(classes is None for classes in row_classes):
            raise ValueError(
                "cannot compare the parameters of a multiclass model with those of "
                "a binary one (their coef_ rows mean different things)"
            )
        common = row_classes[0]
        for classes in row_classes[1:]:
            common = np.intersect1d(common, classes)
        parts = [
            (coef[np.isin(classes, common)], inter[np.isin(classes, common)], None)
            for coef, inter, classes in parts
        ]
    shapes = {coef.shape for coef, _, _ in parts}
    if len(shapes) > 1:
        raise ValueError(f"the models' coef_ shapes differ: {sorted(shapes)}")
    return [np.hstack([coef, inter[:, None]]).ravel() for coef, inter, _ in parts]


def _references_by_keyword(function, args, original, refit):
    """``(original, refit)`` from the deprecated positional form, with a warning."""
    if not args:
        if original is None or refit is None:
            raise TypeError(
                f"{function}() needs the keyword arguments original= and refit="
            )
        return original, refit
    if len(args) != 2 or original is not None or refit is not None:
        raise TypeError(
            f"{function}() takes the references as keyword arguments: "
            "original=..., refit=..."
        )
    warnings.warn(
        f"{function}(updated, original, refit) with the references given by "
        "position is deprecated and will be an error in sklearn-ssse 0.3; write "
        f"{function}(updated, original=original, refit=refit): the judged model "
        "comes first, the references are keyword-only, as in similarity_ratio",
        FutureWarning,
        stacklevel=3,
    )
    return args


def relative_parameter_distance(updated, *args, original=None, refit=None):
    """Relative distance to the refit, ``‖θ̂ − θ_{-S}‖ / ‖θ* − θ_{-S}‖``.

    0: the update landed on the refit's parameters; 1: it is as far from them as
    the original model. Lower is better. The paper (Fig. 2b) notes that in high
    dimension this distance can stay large while the behaviour (γ, δ) is already
    close to the refit's.

    Parameters
    ----------
    updated : fitted estimator or array-like of shape (n_params,)
        The updated model, or its flat parameters.

    original : fitted estimator or array-like of shape (n_params,)
        Keyword-only. The original model, or its flat parameters.

    refit : fitted estimator or array-like of shape (n_params,)
        Keyword-only. The reference refitted without the forgotten rows, or its
        flat parameters.

        .. deprecated:: 0.2
           ``relative_parameter_distance(updated, original, refit)`` by position
           still works with a ``FutureWarning``; it will be an error in 0.3.

    Returns
    -------
    distance : float
        The relative distance. When ``θ* = θ_{-S}`` (the deletion changed nothing):
        0.0 if ``θ̂`` equals them too, else ``inf``.

    Notes
    -----
    Estimators are compared through ``coef_`` and ``intercept_`` (or, for a
    multi-output meta-estimator, those of each of its ``estimators_``). For a
    multiclass model that forgot a whole class, the refit has no row for it:
    only the rows of the classes all three models have are compared.

    Examples
    --------
    >>> from sklearn_ssse.metrics import relative_parameter_distance
    >>> relative_parameter_distance([1.5, 2.0], original=[0.0, 0.0], refit=[3.0, 4.0])
    0.5
    """
    original, refit = _references_by_keyword(
        "relative_parameter_distance", args, original, refit
    )
    return _relative_parameter_distance(updated, original, refit)


@validate_params(
    {
        "updated": ["array-like", BaseEstimator],
        "original": ["array-like", BaseEstimator],
        "refit": ["array-like", BaseEstimator],
    },
    prefer_skip_nested_validation=True,
)
def _relative_parameter_distance(updated, original, refit):
    given = (updated, original, refit)
    if any(isinstance(arg, BaseEstimator) for arg in given):
        if not all(isinstance(arg, BaseEstimator) for arg in given):
            raise TypeError("pass either three fitted estimators or three vectors")
        vectors = _aligned_parameters(given)
    else:
        vectors = [np.asarray(_host(arg), dtype=np.float64).ravel() for arg in given]
        check_consistent_length(*vectors)
    theta, theta_original, theta_refit = vectors
    numerator = np.linalg.norm(theta - theta_refit)
    denominator = np.linalg.norm(theta_original - theta_refit)
    if denominator == 0:
        return 0.0 if numerator == 0 else float("inf")
    return float(numerator / denominator)


# -- the report ------------------------------------------------------------------------
def _positive_scores(model, X):
    """``predict_proba`` of the positive class of every output, as (n, n_outputs)."""
    proba = model.predict_proba(X)
    if isinstance(proba, list):
        return np.column_stack([_host(p)[:, -1] for p in proba])
    proba = np.asarray(_host(proba))
    if proba.ndim == 2 and proba.shape[1] == 2:
        return proba[:, -1:]
    return proba


def _true_class_proba(model, X, y):
    """Per row and output: probability given to the true label, shape (n, n_out).

    Labels the model does not know (a class a refit never saw) get probability 0.
    """
    proba = model.predict_proba(X)
    proba = [_host(p) for p in proba] if isinstance(proba, list) else _host(proba)
    y = np.asarray(_host(y))
    if isinstance(proba, list) or y.ndim == 2:
        Y = y.reshape(len(y), -1)
        if isinstance(proba, list):
            classes = [_host(c) for c in model.classes_]
            per_output = zip(proba, classes, Y.T, strict=True)
            return np.column_stack(
                [_pick(p, classes, yj) for p, classes, yj in per_output]
            )
        proba = np.asarray(proba, dtype=np.float64)  # (n, n_outputs) of P(y=1)
        return np.where(Y == 1, proba, 1.0 - proba)
    return _pick(proba, _host(model.classes_), y)[:, None]


def _pick(proba, classes, y):
    classes = np.asarray(classes)
    index = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    known = classes[index] == y
    picked = np.take_along_axis(proba, index[:, None], axis=1)[:, 0]
    return np.where(known, picked, 0.0)


def _row_losses(model, X, y):
    """Per-row log-loss, averaged over outputs (clipped like ``log_loss``)."""
    p = _true_class_proba(model, X, y)
    eps = np.finfo(np.float64).eps
    return -np.log(np.clip(p, eps, 1.0)).mean(axis=1)


def _accuracy(model, X, y):
    pred = np.asarray(_host(model.predict(X)))
    return float(np.mean(pred == np.asarray(_host(y)).reshape(pred.shape)))


_MODELS = ("original", "updated", "refit")
_SPLITS = (
    ("remaining", "remaining train"),
    ("forgotten", "forgotten"),
    ("test_kept", "test w/o erased group"),
    ("test_erased", "test of erased group"),
)
_SCORES = {
    "similarity_ratio": "similarity ratio γ (↑)",
    "normalized_confusion_distance": "confusion distance δ (↓)",
}


class ErasureReport(dict):
    """The outcome of :func:`erasure_report`: ``report[model][column]``.

    A plain ``dict`` mapping ``"original"``, ``"updated"`` and ``"refit"`` to a
    dict of floats (NaN where a split was not given); printing it shows a table,
    and ``pandas.DataFrame.from_dict(report, orient="index")`` turns it into a
    data frame. Columns:

    - ``accuracy_<split>``, ``log_loss_<split>`` for the splits ``remaining``
      (training rows kept), ``forgotten``, ``test_kept`` (test rows outside the
      erased group) and ``test_erased`` (test rows of the erased group);
      multi-output models are averaged over outputs;
    - ``similarity_ratio`` or ``normalized_confusion_distance`` (see ``metric``);
      for the original and the refit it is 0 or 1 by construction; NaN when
      undefined (the original and the refit behave identically on the forgotten
      rows, see :mod:`sklearn_ssse.metrics`);
    - ``parameter_distance``: :func:`relative_parameter_distance` (1 for the
      original, 0 for the refit);
    - ``membership_auc``: a loss-threshold membership-inference attack, the
      ROC-AUC of ``−loss`` separating the forgotten rows from unseen rows
      (``membership_reference`` says which). 0.5: indistinguishable. The
      updated model should be close to the refit, not to the original.

    Attributes
    ----------
    metric : str
        ``"similarity_ratio"`` or ``"normalized_confusion_distance"``.
    n_forgotten : int
        Number of forgotten rows.
    membership_reference : str
        The unseen rows the attack compares the forgotten rows with.
    noise_floor : dict or None
        With a ``second_refit``: its erasure score and parameter distance
        (``report["refit_2"]``), the distance between two retrainings. ``None``
        otherwise.
    records : list of dict
        The updated model's request records
        (:func:`~sklearn_ssse.certificate.erasure_audit`), empty for a model
        without them.
    certificate : dict or None
        The certificate of the updated model's last request.
    flags : list of str
        Plain-language warnings, e.g. when the updated model is further from
        the refit than the original was.
    """

    noise_floor = None

    def __init__(
        self,
        rows,
        *,
        metric,
        n_forgotten,
        membership_reference,
        records=(),
        certificate=None,
        flags=(),
    ):
        super().__init__(rows)
        self.metric = metric
        self.n_forgotten = n_forgotten
        self.membership_reference = membership_reference
        self.records = list(records)
        self.certificate = certificate
        self.flags = list(flags)

    def to_dict(self):
        """The report as plain Python values (NaN and ±inf become ``None``)."""

        def clean(value):
            value = float(value)
            return value if np.isfinite(value) else None

        return {
            "metric": self.metric,
            "n_forgotten": int(self.n_forgotten),
            "membership_reference": self.membership_reference,
            "models": {
                name: {key: clean(v) for key, v in row.items()}
                for name, row in self.items()
            },
            "noise_floor": None
            if self.noise_floor is None
            else {key: clean(v) for key, v in self.noise_floor.items()},
            "certificate": self.certificate,
            "records": self.records,
            "flags": self.flags,
        }

    def to_json(self, **kwargs):
        """The report as JSON (valid: no NaN, ``allow_nan=False``)."""
        import json

        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    def __str__(self):
        lines = [
            f"Erasure report: {self.n_forgotten} rows forgotten",
            f"{'':34}" + "".join(f"{name:>10}" for name in self),
        ]

        def row(label, key, fmt="{:10.4f}"):
            values = [self[name].get(key, np.nan) for name in self]
            cells = "".join(
                f"{'-':>10}" if np.isnan(v) else fmt.format(v) for v in values
            )
            lines.append(f"{label:34}{cells}")

        for measure, title in (("accuracy", "accuracy"), ("log_loss", "log-loss")):
            for split, label in _SPLITS:
                row(f"{title:9} {label}", f"{measure}_{split}")
        row(_SCORES[self.metric], self.metric)
        row("parameter distance to refit (↓)", "parameter_distance")
        row("membership AUC (≈ refit's)", "membership_auc")
        lines.append(f"membership AUC: forgotten rows vs {self.membership_reference}")
        certificate = self.certificate or {}
        bound = certificate.get("cumulative_gradient_bound")
        if bound is not None:
            line = (
                f"certified ‖∇J_rem‖ ≤ {bound:.3g} after {len(self.records)} request(s)"
            )
            distance = certificate.get("distance_bound")
            if distance is not None:
                line += f"; distance to the exact retrain ≤ {distance:.3g}"
            lines.append(line)
        lines.extend(f"WARNING: {flag}" for flag in self.flags)
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def erasure_report(
    updated,
    X_forgotten,
    y_forgotten,
    *args,
    original=None,
    refit=None,
    X_remaining=None,
    y_remaining=None,
    X_test=None,
    y_test=None,
    test_erased=None,
    metric="auto",
    second_refit=None,
):
    """The paper's Table 1 for one deletion: original, updated and refit side by side.

    Parameters
    ----------
    updated : fitted classifier
        The model after :meth:`partial_forget` (or any other erasure): the model
        judged. As in every score of this module, it comes first and the
        references are keyword-only. A pipeline, a search or an
        :class:`~sklearn_ssse.ErasableLogisticRegressionCV` is judged on raw rows;
        its parameter distance and records are its final model's.

    X_forgotten : {array-like, sparse matrix} of shape (n_forgotten, n_features)
        The forgotten rows.

    y_forgotten : array-like of shape (n_forgotten,) or (n_forgotten, n_outputs)
        Their labels.

    original : fitted classifier
        Keyword-only. The model before the deletion.

    refit : fitted classifier
        Keyword-only. The reference refitted on the remaining training rows.

        .. deprecated:: 0.2
           The old order ``erasure_report(original, updated, refit, X_forgotten,
           y_forgotten, ...)`` still works with a ``FutureWarning``; it will be
           an error in 0.3.

    X_remaining, y_remaining : array-like, default=None
        The training rows that were kept; their columns are NaN when omitted.

    X_test, y_test : array-like, default=None
        Held-out rows; their columns and ``membership_auc`` are NaN when omitted.

    test_erased : array-like of bool of shape (n_test,), default=None
        Which test rows belong to the erased group (e.g. ``y_test == c`` when a
        class ``c`` was forgotten). They form the ``test_erased`` split and are
        the unseen rows of the membership attack: a removed group is compared
        with unseen rows of the same group, otherwise a model that merely
        misclassifies the group would look like it remembers it. ``None``: no
        erased group; all test rows form ``test_kept``.

    metric : {"auto", "similarity_ratio", "normalized_confusion_distance"}, \
default="auto"
        The erasure score. ``"auto"``: γ for multi-output labels (2-D
        ``y_forgotten``), δ otherwise.

    second_refit : fitted classifier, default=None
        Another refit on the same remaining rows, from another seed
        (``random_state``). It gets a column ``"refit_2"``, scored against the
        original and the first refit like the update: its δ (or γ) and parameter
        distance are the **noise floor** of retraining (``report.noise_floor``).
        For a non-convex model, "close to the refit" means "within it".

    Returns
    -------
    report : ErasureReport
        ``report[model][column]`` for ``model`` in ``"original"``, ``"updated"``,
        ``"refit"`` (and ``"refit_2"``); printing it shows the table.

    Examples
    --------
    >>> import copy
    >>> from sklearn.base import clone
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.metrics import erasure_report
    >>> X, y = load_iris(return_X_y=True)
    >>> X, X_test, y, y_test = train_test_split(X, y, random_state=0)
    >>> forget = (y == 2) & (X[:, 0] > 6.5)           # part of class 2
    >>> model = ErasableLogisticRegression(curvature="hessian", max_iter=1000)
    >>> original = model.fit(X, y)
    >>> refit = clone(model).fit(X[~forget], y[~forget])
    >>> updated = copy.deepcopy(original).partial_forget(X[forget], y[forget])
    >>> report = erasure_report(
    ...     updated, X[forget], y[forget], original=original, refit=refit,
    ...     X_remaining=X[~forget], y_remaining=y[~forget],
    ...     X_test=X_test, y_test=y_test, test_erased=y_test == 2)
    >>> print(report)
    Erasure report: 21 rows forgotten
                                        original   updated     refit
    accuracy  remaining train             0.9780    0.9890    0.9890
    accuracy  forgotten                   1.0000    1.0000    1.0000
    ...
    confusion distance δ (↓)                   -         -         -
    parameter distance to refit (↓)       1.0000    0.0...    0.0000
    ...
    >>> report["refit"]["accuracy_test_erased"]
    1.0

    δ is undefined here ("-"): the original and the refit predict the same
    labels on the forgotten rows. The log-losses and the membership attack still
    show the erasure.
    """
    if hasattr(X_forgotten, "predict"):  # the old order: original, updated, refit
        if len(args) != 2 or original is not None or refit is not None:
            raise TypeError(
                "erasure_report(updated, X_forgotten, y_forgotten, *, original, "
                "refit, ...): give the references as keyword arguments"
            )
        warnings.warn(
            "erasure_report(original, updated, refit, X_forgotten, y_forgotten) is "
            "deprecated and will be an error in sklearn-ssse 0.3; write "
            "erasure_report(updated, X_forgotten, y_forgotten, original=original, "
            "refit=refit): the judged model comes first, the references are "
            "keyword-only, as in similarity_ratio",
            FutureWarning,
            stacklevel=2,
        )
        original, updated, refit = updated, X_forgotten, y_forgotten
        X_forgotten, y_forgotten = args
    elif args:
        raise TypeError(
            "erasure_report() takes 3 positional arguments (updated, X_forgotten, "
            "y_forgotten); give the others as keyword arguments"
        )
    elif original is None or refit is None:
        raise TypeError(
            "erasure_report() needs the keyword arguments original= and refit="
        )
    report = _erasure_report(
        original,
        updated,
        refit,
        X_forgotten,
        y_forgotten,
        X_remaining=X_remaining,
        y_remaining=y_remaining,
        X_test=X_test,
        y_test=y_test,
        test_erased=test_erased,
        metric=metric,
        second_refit=second_refit,
    )
    # A pipeline, search or CV model: its final model's parameters and records.
    from ._composition import unwrap

    models = {"original": original, "updated": updated, "refit": refit}
    if second_refit is not None:
        models["refit_2"] = second_refit
    finals = {name: unwrap(m)[0] for name, m in models.items()}
    if any(finals[name] is not m for name, m in models.items()):
        for name, final in finals.items():
            try:
                distance = _relative_parameter_distance(
                    final, finals["original"], finals["refit"]
                )
            except (TypeError, ValueError):
                distance = np.nan
            report[name]["parameter_distance"] = distance
        try:
            records = finals["updated"].request_records_
        except AttributeError:  # not an erasable model
            records = ()
        if records and report.certificate is None:
            report.certificate = records[-1].to_dict()["certificate"]
            report.flags = _report_flags(
                report["updated"], report.metric, report.certificate
            )
    return report


@validate_params(
    {
        "original": [HasMethods(["predict", "predict_proba"])],
        "updated": [HasMethods(["predict", "predict_proba"])],
        "refit": [HasMethods(["predict", "predict_proba"])],
        "X_forgotten": ["array-like", "sparse matrix"],
        "y_forgotten": ["array-like"],
        "X_remaining": ["array-like", "sparse matrix", None],
        "y_remaining": ["array-like", None],
        "X_test": ["array-like", "sparse matrix", None],
        "y_test": ["array-like", None],
        "test_erased": ["array-like", None],
        "metric": [
            StrOptions({"auto", "similarity_ratio", "normalized_confusion_distance"})
        ],
        "second_refit": [HasMethods(["predict", "predict_proba"]), None],
    },
    prefer_skip_nested_validation=True,
)
def _erasure_report(
    original,
    updated,
    refit,
    X_forgotten,
    y_forgotten,
    *,
    X_remaining=None,
    y_remaining=None,
    X_test=None,
    y_test=None,
    test_erased=None,
    metric="auto",
    second_refit=None,
):
    """The implementation of :func:`erasure_report`, in the old order."""
    y_forgotten = np.asarray(_host(y_forgotten))
    y_remaining = _host(y_remaining)
    if metric == "auto":
        metric = (
            "similarity_ratio"
            if y_forgotten.ndim == 2
            else ("normalized_confusion_distance")
        )
    models = {"original": original, "updated": updated, "refit": refit}
    if second_refit is not None:
        models["refit_2"] = second_refit
    rows = {name: {} for name in models}

    splits = {
        "remaining": (X_remaining, y_remaining),
        "forgotten": (X_forgotten, y_forgotten),
        "test_kept": (None, None),
        "test_erased": (None, None),
    }
    losses_test_erased = None
    if X_test is not None:
        if y_test is None:
            raise ValueError("X_test was given without y_test")
        y_test = np.asarray(_host(y_test))
        erased = (
            np.zeros(len(y_test), dtype=bool)
            if test_erased is None
            else np.asarray(test_erased, dtype=bool)
        )
        check_consistent_length(y_test, erased)
        kept = np.flatnonzero(~erased)
        gone = np.flatnonzero(erased)
        splits["test_kept"] = (_take(X_test, kept), y_test[kept])
        splits["test_erased"] = (_take(X_test, gone), y_test[gone])
        losses_test_erased = len(gone) > 0
    for name, model in models.items():
        for split, (X_split, y_split) in splits.items():
            if X_split is None or len(y_split) == 0:
                accuracy = loss = np.nan
            else:
                accuracy = _accuracy(model, X_split, y_split)
                loss = float(_row_losses(model, X_split, y_split).mean())
            rows[name][f"accuracy_{split}"] = accuracy
            rows[name][f"log_loss_{split}"] = loss

    # The erasure score of every model against the two references.
    if metric == "similarity_ratio":
        scores = {name: _positive_scores(m, X_forgotten) for name, m in models.items()}
        for name in models:
            rows[name][metric] = similarity_ratio(
                y_forgotten,
                scores[name],
                y_score_original=scores["original"],
                y_score_refit=scores["refit"],
                zero_division=np.nan,
            )
    else:
        preds = {name: _host(m.predict(X_forgotten)) for name, m in models.items()}
        for name in models:
            rows[name][metric] = normalized_confusion_distance(
                y_forgotten,
                preds[name],
                y_pred_original=preds["original"],
                y_pred_refit=preds["refit"],
                labels=_host(getattr(original, "classes_", None)),
                zero_division=np.nan,
            )

    for name, model in models.items():
        try:
            distance = _relative_parameter_distance(model, original, refit)
        except (TypeError, ValueError):
            distance = np.nan
        rows[name]["parameter_distance"] = distance

    reference = "no test rows given"
    if X_test is not None:
        X_unseen, y_unseen = splits[
            "test_erased" if losses_test_erased else "test_kept"
        ]
        reference = (
            "test rows of the erased group" if losses_test_erased else "all test rows"
        )
    for name, model in models.items():
        if X_test is None or len(y_unseen) == 0:
            rows[name]["membership_auc"] = np.nan
            continue
        member = np.r_[np.ones(len(y_forgotten)), np.zeros(len(y_unseen))]
        minus_loss = -np.r_[
            _row_losses(model, X_forgotten, y_forgotten),
            _row_losses(model, X_unseen, y_unseen),
        ]
        rows[name]["membership_auc"] = float(roc_auc_score(member, minus_loss))

    records, certificate = _request_records(updated)
    report = ErasureReport(
        rows,
        metric=metric,
        n_forgotten=len(y_forgotten),
        membership_reference=reference,
        records=records,
        certificate=certificate,
        flags=_report_flags(rows["updated"], metric, certificate),
    )
    if second_refit is not None:
        report.noise_floor = {
            key: rows["refit_2"][key] for key in (metric, "parameter_distance")
        }
    return report


def _request_records(model):
    """The model's audit records and its last certificate (empty if none)."""
    from .certificate import erasure_audit

    try:
        records = list(erasure_audit(model))
    except Exception:  # not an erasable model, or not fitted with a state
        return [], None
    records_ = getattr(model, "request_records_", ())
    certificate = records_[-1].to_dict()["certificate"] if records_ else None
    return records, certificate


def _report_flags(updated, metric, certificate):
    """Plain-language warnings about the updated model."""
    flags = []
    distance = updated.get("parameter_distance", np.nan)
    if distance > 1:
        flags.append(
            f"the updated model is further from the refit than the original was "
            f"(relative parameter distance {distance:.3g} > 1): the erasure step "
            "moved away from the retrain; refit, or lower forget_scale"
        )
    score = updated.get(metric, np.nan)
    if metric == "similarity_ratio" and score < 0.5:
        flags.append(
            f"on the forgotten rows the updated model ranks more like the original "
            f"than like the refit (γ = {score:.3g} < 0.5)"
        )
    if metric == "normalized_confusion_distance" and score > 0.5:
        flags.append(
            f"on the forgotten rows the updated model classifies more like the "
            f"original than like the refit (δ = {score:.3g} > 0.5)"
        )
    if certificate and certificate.get("cumulative_gradient_bound") is None:
        flags.append(
            "the last request is not covered by the certificate "
            f"({certificate.get('note', 'see the request record')})"
        )
    return flags


def _take(X, index):
    xp, device = _array_api.namespace(X) if hasattr(X, "shape") else (None, None)
    if xp is not None:  # an array API array: index it on its device
        return xp.take(X, _array_api.to_device(index, xp, device), axis=0)
    return X[index] if hasattr(X, "shape") else np.asarray(X)[index]


# Parameter errors name the public functions, not their validated implementations.
_relative_parameter_distance.__wrapped__.__qualname__ = "relative_parameter_distance"
_erasure_report.__wrapped__.__qualname__ = "erasure_report"
