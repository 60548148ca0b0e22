"""Choosing the step scale ε (``forget_scale``) the scikit-learn way.

The paper's premise (§4, "Discussion") is that ε is a property of the stored
curvature, not of a particular request: it is chosen **once**, on a calibration
deletion ``(X_S, y_S)`` for which one reference model was refitted without those
rows, and reused for later requests. Two routes give the same answer:

- **GridSearchCV.** :class:`ForgetStep` wraps the fitted model as an estimator
  whose ``fit(X_S, y_S)`` *forgets* ``(X_S, y_S)`` from a copy of it;
  :func:`make_erasure_scorer` scores the result against the original and the
  refit on the same rows. Any searchable parameter works: ``forget_scale``,
  ``leave_out``, or ``estimator`` itself to compare fitted models (e.g. Fisher
  against Hessian curvature, or several ``damping`` values)::

      idx = np.arange(len(y_S))
      search = GridSearchCV(
          ForgetStep(model),
          {"forget_scale": np.logspace(-2, 2, 21)},
          scoring=make_erasure_scorer("similarity_ratio", refit_estimator=refit),
          cv=[(idx, idx)],
      ).fit(X_S, y_S)
      model.set_params(forget_scale=search.best_params_["forget_scale"])

  ``cv`` must be the single split ``[(idx, idx)]``: the "training" rows of a
  ``ForgetStep`` are the rows it forgets and the scores are defined on those same
  rows (they are where the original and the refit differ most). Folds would
  forget only part of ``S`` and compare it with a refit that lacks all of ``S``.

- **The fast path.** The update is ``θ(ε) = θ* − ε·s`` with a step ``s`` that does
  not depend on ε. :func:`forget_scale_curve` computes ``s`` once and scores
  every ε of a grid from it (as ``RidgeCV`` scores every α from one
  decomposition), returning the whole curve and its best value.
"""

import copy
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin
from sklearn.frozen import FrozenEstimator
from sklearn.utils import get_tags
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_params,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .metrics import (
    _positive_scores,
    normalized_confusion_distance,
    relative_parameter_distance,
    similarity_ratio,
)

__all__ = [
    "ErasureScorer",
    "ForgetScaleCurve",
    "ForgetStep",
    "forget_scale_curve",
    "make_erasure_scorer",
]

#: Scorer names: a metric where higher is better, or ``neg_`` of one where lower is.
SCORERS = (
    "similarity_ratio",
    "neg_normalized_confusion_distance",
    "neg_relative_parameter_distance",
)


def _unwrap(estimator):
    """The fitted model inside a possible :class:`~sklearn.frozen.FrozenEstimator`."""
    while isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    return estimator


def _request_params(model, **values):
    """``values`` keyed by the model's own (possibly nested) parameter names.

    ``forget_scale`` is a parameter of an erasable model and a nested one
    (``estimator__forget_scale``) of a meta-estimator such as
    :class:`~sklearn_ssse.multioutput.ErasableMultiOutputClassifier`.
    """
    names = model.get_params(deep=True)
    params = {}
    for name, value in values.items():
        if value is None:
            continue
        keys = [key for key in names if key == name or key.endswith("__" + name)]
        if not keys:
            raise ValueError(
                f"{type(model).__name__} has no parameter {name!r}, even nested"
            )
        params.update(dict.fromkeys(keys, value))
    return params


def _updated_has(attr):
    def check(self):
        if hasattr(self, "estimator_"):
            getattr(self.estimator_, attr)
        else:
            getattr(_unwrap(self.estimator), attr)
        return True

    return check


class ForgetStep(MetaEstimatorMixin, BaseEstimator):
    """A fitted erasable model whose ``fit`` forgets rows: ε search in GridSearchCV.

    ``ForgetStep(model).fit(X_S, y_S)`` deep-copies the **already fitted**
    ``model``, sets ``forget_scale`` and ``leave_out`` on the copy (when given) and
    calls its ``partial_forget(X_S, y_S)``; prediction methods then delegate to
    the updated copy, ``estimator_``. ``model`` itself is never changed.

    Like :class:`~sklearn.frozen.FrozenEstimator`, it survives
    :func:`~sklearn.base.clone` with its model still fitted, so that
    :class:`~sklearn.model_selection.GridSearchCV` can search its parameters with
    the scorers of :func:`make_erasure_scorer`. Use ``cv=[(idx, idx)]`` with
    ``idx = np.arange(len(y_S))``: the forgotten rows are both the "training"
    rows and the rows the scores are defined on.

    Parameters
    ----------
    estimator : fitted erasable estimator
        A fitted model with ``partial_forget`` (e.g.
        :class:`~sklearn_ssse.ErasableLogisticRegression`), possibly wrapped in
        :class:`~sklearn.frozen.FrozenEstimator`. To compare parameters that need
        a new fit (``curvature``, ``damping``, ``block_size``), fit one model per
        value and search ``{"estimator": [FrozenEstimator(m1),
        FrozenEstimator(m2)]}``: the search clones parameter values, and only a
        frozen model survives that clone fitted.

    forget_scale : float > 0 or None, default=None
        The step scale ε to set on the copy; ``None`` keeps the model's. On a
        meta-estimator it is set where the model has it, e.g.
        ``estimator__forget_scale`` of
        :class:`~sklearn_ssse.multioutput.ErasableMultiOutputClassifier`.

    leave_out : bool or None, default=None
        The ``leave_out`` to set on the copy (likewise); ``None`` keeps the
        model's.

    Attributes
    ----------
    estimator_ : estimator
        The copy of ``estimator`` after ``partial_forget``.

    classes_ : ndarray or list of ndarray
        The classes of ``estimator_``.

    n_features_in_ : int
        Number of features of ``estimator_``.

    See Also
    --------
    make_erasure_scorer : The scorers to search with.
    forget_scale_curve : The same search over ε from one computation of the step.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.model_selection import ForgetStep, make_erasure_scorer
    >>> X, y = load_wine(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> S = (y == 1) & (X[:, 0] > 0)             # the calibration deletion
    >>> model = ErasableLogisticRegression(curvature="fisher").fit(X, y)
    >>> refit = ErasableLogisticRegression(curvature="fisher").fit(X[~S], y[~S])
    >>> idx = np.arange(S.sum())
    >>> search = GridSearchCV(
    ...     ForgetStep(model),
    ...     {"forget_scale": [0.01, 0.1, 0.3, 1.0, 10.0]},
    ...     scoring=make_erasure_scorer(
    ...         "neg_normalized_confusion_distance", refit_estimator=refit),
    ...     cv=[(idx, idx)],
    ... ).fit(X[S], y[S])
    >>> search.best_params_, search.best_score_   # δ = 0: predicts S as the refit
    ({'forget_scale': 0.3}, np.float64(0.0))
    >>> search.best_estimator_.estimator_.n_forgotten_   # refit=True: S forgotten
    8
    >>> model.n_forgotten_                       # the model itself is untouched
    0
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["partial_forget", "predict"])],
        "forget_scale": [Interval(Real, 0, None, closed="neither"), None],
        "leave_out": ["boolean", None],
    }

    def __init__(self, estimator, *, forget_scale=None, leave_out=None):
        self.estimator = estimator
        self.forget_scale = forget_scale
        self.leave_out = leave_out

    def __sklearn_clone__(self):
        # A new wrapper around the *same* fitted model: ``fit`` never changes it.
        return type(self)(**self.get_params(deep=False))

    def get_params(self, deep=True):
        """Get the parameters of this estimator (never those of the wrapped model).

        Parameters
        ----------
        deep : bool, default=True
            Ignored: the wrapped model's parameters are not exposed, since setting
            them would change the user's fitted model.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return super().get_params(deep=False)

    def set_params(self, **params):
        """Set the parameters of this estimator.

        Parameters
        ----------
        **params : dict
            ``estimator``, ``forget_scale`` or ``leave_out``. Nested parameters
            (``estimator__...``) are refused: they would change the fitted model
            shared by every clone. Set ``forget_scale``/``leave_out`` here, or
            pass another fitted model as ``estimator``.

        Returns
        -------
        self : ForgetStep
            This estimator.
        """
        nested = [key for key in params if "__" in key]
        if nested:
            raise ValueError(
                f"ForgetStep does not set parameters of the wrapped model ({nested}): "
                "they would change the fitted model shared by every clone. Set "
                "forget_scale or leave_out on the ForgetStep, or search over "
                "estimator=[FrozenEstimator(model_a), FrozenEstimator(model_b)]."
            )
        return super().set_params(**params)

    def fit(self, X, y, sample_weight=None):
        """Forget ``(X, y)`` from a copy of the fitted model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            The rows to forget.
        y : array-like of shape (n_rows,) or (n_rows, n_outputs)
            Their labels.
        sample_weight : array-like of shape (n_rows,), default=None
            Their sample weights in the original fit; passed to ``partial_forget``.

        Returns
        -------
        self : ForgetStep
            This estimator, with ``estimator_`` set.
        """
        self._validate_params()
        model = _unwrap(self.estimator)
        check_is_fitted(model)
        updated = copy.deepcopy(model)
        overrides = _request_params(
            updated, forget_scale=self.forget_scale, leave_out=self.leave_out
        )
        if overrides:
            updated.set_params(**overrides)
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        updated.partial_forget(X, y, **kwargs)
        self.estimator_ = updated
        return self

    @property
    def classes_(self):
        """The classes of the updated model."""
        return self.estimator_.classes_

    @property
    def n_features_in_(self):
        """Number of features seen by the wrapped model."""
        return _unwrap(self.estimator).n_features_in_

    @available_if(_updated_has("predict"))
    def predict(self, X):
        """Predict with the updated model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y_pred : ndarray
            ``estimator_.predict(X)``.
        """
        check_is_fitted(self)
        return self.estimator_.predict(X)

    @available_if(_updated_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the updated model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        proba : ndarray or list of ndarray
            ``estimator_.predict_proba(X)``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    @available_if(_updated_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log of the class probabilities of the updated model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        log_proba : ndarray or list of ndarray
            ``estimator_.predict_log_proba(X)``.
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)

    @available_if(_updated_has("decision_function"))
    def decision_function(self, X):
        """Decision function of the updated model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        scores : ndarray
            ``estimator_.decision_function(X)``.
        """
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    @available_if(_updated_has("score"))
    def score(self, X, y, sample_weight=None):
        """The updated model's default score (e.g. accuracy).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.
        y : array-like
            True labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            ``estimator_.score(X, y, sample_weight)``.
        """
        check_is_fitted(self)
        return self.estimator_.score(X, y, sample_weight=sample_weight)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimator_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(_unwrap(self.estimator))
        tags.estimator_type = inner.estimator_type
        tags.classifier_tags = copy.deepcopy(inner.classifier_tags)
        tags.target_tags = copy.deepcopy(inner.target_tags)
        tags.input_tags = copy.deepcopy(inner.input_tags)
        return tags


# -- scorers ---------------------------------------------------------------------------
class ErasureScorer:
    """Scores an updated model against the original and a refit on the forgotten rows.

    Build it with :func:`make_erasure_scorer`. It is a scikit-learn scorer: a
    callable ``scorer(estimator, X, y)`` returning a float where greater is better.
    """

    def __init__(self, metric, refit_estimator, original_estimator, zero_division):
        self.metric = metric
        self.refit_estimator = refit_estimator
        self.original_estimator = original_estimator
        self.zero_division = zero_division

    def __repr__(self):
        return f"make_erasure_scorer({self.metric!r})"

    def __call__(self, estimator, X, y_true, sample_weight=None):
        """Score ``estimator`` on the forgotten rows ``(X, y_true)``.

        Parameters
        ----------
        estimator : fitted ForgetStep or fitted model
            A fitted :class:`ForgetStep` (its original model is the one it wraps)
            or an updated model (then ``original_estimator`` must have been
            given to :func:`make_erasure_scorer`).
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            The forgotten rows.
        y_true : array-like
            Their labels.
        sample_weight : None
            Unused; accepted for the scorer protocol.

        Returns
        -------
        score : float
            The metric, negated for the ``neg_`` scorers.
        """
        if isinstance(estimator, ForgetStep):
            check_is_fitted(estimator)
            updated = estimator.estimator_
            original = (
                _unwrap(estimator.estimator)
                if self.original_estimator is None
                else self.original_estimator
            )
        else:
            if self.original_estimator is None:
                raise ValueError(
                    "scoring a model that is not a ForgetStep needs "
                    "original_estimator in make_erasure_scorer"
                )
            updated, original = estimator, self.original_estimator
        return self._score(updated, _unwrap(original), X, y_true)

    def _score(self, updated, original, X, y_true, cache=None):
        """The signed score; ``cache`` holds the references' responses on ``X``."""
        refit = _unwrap(self.refit_estimator)
        if cache is None:
            cache = {}
        if self.metric == "similarity_ratio":
            if "scores" not in cache:
                cache["scores"] = (
                    _positive_scores(original, X),
                    _positive_scores(refit, X),
                )
            score_original, score_refit = cache["scores"]
            return similarity_ratio(
                y_true,
                _positive_scores(updated, X),
                y_score_original=score_original,
                y_score_refit=score_refit,
                zero_division=self.zero_division,
            )
        if self.metric == "neg_normalized_confusion_distance":
            if "preds" not in cache:
                cache["preds"] = (original.predict(X), refit.predict(X))
            pred_original, pred_refit = cache["preds"]
            return 0.0 - normalized_confusion_distance(
                y_true,
                updated.predict(X),
                y_pred_original=pred_original,
                y_pred_refit=pred_refit,
                labels=getattr(original, "classes_", None),
                zero_division=self.zero_division,
            )
        return 0.0 - relative_parameter_distance(
            updated, original=original, refit=refit
        )


@validate_params(
    {
        "metric": [StrOptions(set(SCORERS))],
        "refit_estimator": [HasMethods(["predict"])],
        "original_estimator": [HasMethods(["predict"]), None],
        "zero_division": [
            StrOptions({"warn"}),
            Interval(Real, 0, 1, closed="both"),
            "nan",
        ],
    },
    prefer_skip_nested_validation=True,
)
def make_erasure_scorer(
    metric, *, refit_estimator, original_estimator=None, zero_division="warn"
):
    """A scorer comparing an update with the original model and a refit reference.

    Use it as ``scoring`` of :class:`~sklearn.model_selection.GridSearchCV` (alone
    or in a dict of scorers) around a :class:`ForgetStep`, with
    ``cv=[(idx, idx)]`` over the calibration rows.

    Parameters
    ----------
    metric : {"similarity_ratio", "neg_normalized_confusion_distance", \
"neg_relative_parameter_distance"}
        ``"similarity_ratio"``: γ of :func:`~sklearn_ssse.metrics.similarity_ratio`
        from ``predict_proba`` (binary and multi-output binary models).
        ``"neg_normalized_confusion_distance"``: −δ of
        :func:`~sklearn_ssse.metrics.normalized_confusion_distance` from
        ``predict``, over the original's classes (multiclass models).
        ``"neg_relative_parameter_distance"``: minus
        :func:`~sklearn_ssse.metrics.relative_parameter_distance` (needs
        ``coef_``; ignores ``X`` and ``y``). Scorers follow scikit-learn's
        convention that greater is better, hence the ``neg_``.

    refit_estimator : fitted estimator
        The reference refitted without the calibration rows.

    original_estimator : fitted estimator, default=None
        The model before the update. ``None``: the model wrapped by the scored
        :class:`ForgetStep`. Give it to score updated models directly, as
        ``scorer(updated, X_S, y_S)``.

    zero_division : "warn", float in [0, 1] or np.nan, default="warn"
        Passed to the metric; see :mod:`sklearn_ssse.metrics`.

    Returns
    -------
    scorer : ErasureScorer
        A callable ``scorer(estimator, X, y) -> float``.

    Notes
    -----
    :func:`~sklearn.metrics.make_scorer` cannot express these scores: its
    ``score_func(y_true, y_pred)`` sees one model's predictions, while γ and δ
    need the predictions of three models on the same rows. The metrics
    themselves follow ``make_scorer``'s signature, so with precomputed
    references on the calibration rows (in the order of ``cv``)
    ``make_scorer(similarity_ratio, response_method="predict_proba",
    y_score_original=..., y_score_refit=...)`` gives the same γ.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.model_selection import make_erasure_scorer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> S = slice(0, 40)
    >>> model = ErasableLogisticRegression(curvature="hessian").fit(X, y)
    >>> refit = ErasableLogisticRegression(curvature="hessian").fit(X[40:], y[40:])
    >>> scorer = make_erasure_scorer(
    ...     "neg_relative_parameter_distance",
    ...     refit_estimator=refit, original_estimator=model)
    >>> scorer(model, X[S], y[S])                   # the original: -1
    -1.0
    """
    return ErasureScorer(metric, refit_estimator, original_estimator, zero_division)


# -- the fast path ---------------------------------------------------------------------
def _get_theta(model):
    """The flat parameters of an erasable model (or of each of its ``estimators_``)."""
    if hasattr(model, "_get_flat_params"):
        return np.asarray(model._get_flat_params())
    if hasattr(model, "estimators_"):
        return np.concatenate([_get_theta(sub) for sub in model.estimators_])
    raise TypeError(
        f"{type(model).__name__} exposes neither _get_flat_params nor estimators_ "
        "of models that do; use GridSearchCV with ForgetStep instead"
    )


def _set_theta(model, theta):
    """Set the fitted attributes of ``model`` to the flat parameters ``theta``."""
    if hasattr(model, "_flat_params_attributes"):
        # θ* + ε·step keeps (1 − ε) of a forgotten class's parameters: clear them,
        # as partial_forget does.
        theta = model._zero_forgotten_classes(theta, model.class_counts_ > 0)
        for name, value in model._flat_params_attributes(theta).items():
            setattr(model, name, value)
        return
    start = 0
    for sub in model.estimators_:
        stop = start + _get_theta(sub).size
        _set_theta(sub, theta[start:stop])
        start = stop


@dataclass(repr=False)
class ForgetScaleCurve:
    """The result of :func:`forget_scale_curve`.

    Attributes
    ----------
    forget_scales : ndarray of shape (n_scales,)
        The grid of ε.
    scores : dict of str to ndarray of shape (n_scales,)
        Each scorer's value at every ε (greater is better; ``neg_`` scorers are
        negated metrics).
    scoring : str
        The scorer that picks the best ε (the first one asked for).
    best_index : int
        Index of the first ε with the best score (GridSearchCV's tie rule).
    best_forget_scale : float
        That ε.
    best_score : float
        Its score.
    best_estimator : estimator
        A copy of the model after forgetting the calibration rows with the best ε
        (its ``forget_scale`` is set to it).
    noise_floor : dict of str to float or None
        Each scorer's value for ``second_refit`` (a refit from another seed),
        scored like the updates: the best an update can expect when retraining
        itself is random (non-convex models). ``None`` without a second refit.
    """

    forget_scales: np.ndarray
    scores: dict
    scoring: str
    best_index: int
    best_forget_scale: float
    best_score: float
    best_estimator: object = field(compare=False)
    noise_floor: dict = None

    def __repr__(self):
        return (
            f"ForgetScaleCurve(best_forget_scale={self.best_forget_scale:.4g}, "
            f"best_score={self.best_score:.4g} ({self.scoring}), "
            f"n_scales={len(self.forget_scales)})"
        )


@validate_params(
    {
        "estimator": [HasMethods(["partial_forget", "predict"])],
        "X": ["array-like", "sparse matrix"],
        "y": ["array-like"],
        "refit_estimator": [HasMethods(["predict"])],
        "second_refit": [HasMethods(["predict"]), None],
        "forget_scales": ["array-like", None],
        "scoring": [StrOptions(set(SCORERS)), list, tuple],
        "leave_out": ["boolean", None],
        "sample_weight": ["array-like", None],
        "zero_division": [
            StrOptions({"warn"}),
            Interval(Real, 0, 1, closed="both"),
            "nan",
        ],
    },
    prefer_skip_nested_validation=False,
)
def forget_scale_curve(
    estimator,
    X,
    y,
    *,
    refit_estimator,
    forget_scales=None,
    scoring="similarity_ratio",
    leave_out=None,
    sample_weight=None,
    zero_division="warn",
    second_refit=None,
):
    """Score a whole grid of ε from one computation of the erasure step.

    Forgets ``(X, y)`` once from a copy of ``estimator`` at ε = 1, which gives the
    step ``s = θ* − θ₁``; every ``θ(ε) = θ* − ε·s`` is then scored against the
    original and the refit without another ``partial_forget``. The result equals
    ``GridSearchCV(ForgetStep(estimator), {"forget_scale": forget_scales},
    scoring=make_erasure_scorer(scoring, ...), cv=[(idx, idx)])``.

    Parameters
    ----------
    estimator : fitted erasable estimator
        The model before the deletion (left unchanged). It must expose its flat
        parameters (``_get_flat_params`` / ``_flat_params_attributes``, as
        :class:`~sklearn_ssse.ErasableLogisticRegression` does) or be a
        meta-estimator whose ``estimators_`` do.

    X : {array-like, sparse matrix} of shape (n_rows, n_features)
        The calibration rows to forget.

    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Their labels.

    refit_estimator : fitted estimator
        The reference refitted without ``(X, y)``.

    forget_scales : array-like of shape (n_scales,), default=None
        The grid of ε > 0. ``None``: ``np.logspace(-2, 2, 41)``.

    scoring : str or list of str, default="similarity_ratio"
        Scorer name(s) of :func:`make_erasure_scorer`; the first picks the best ε.

    leave_out : bool or None, default=None
        ``leave_out`` for the step; ``None`` keeps the estimator's.

    sample_weight : array-like of shape (n_rows,), default=None
        The rows' sample weights in the original fit.

    zero_division : "warn", float in [0, 1] or np.nan, default="warn"
        Passed to the metrics; see :mod:`sklearn_ssse.metrics`.
    second_refit : fitted estimator, default=None
        Another refit without ``(X, y)``, from another seed. Scored like the
        updates, it gives ``curve.noise_floor``: the distance between two
        retrainings, the scale on which to judge a non-convex model's update.

    Returns
    -------
    curve : ForgetScaleCurve
        The grid, the scores at every ε and the best ε.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_wine
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.model_selection import forget_scale_curve
    >>> X, y = load_wine(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> S = (y == 1) & (X[:, 0] > 0)
    >>> model = ErasableLogisticRegression(curvature="fisher").fit(X, y)
    >>> refit = ErasableLogisticRegression(curvature="fisher").fit(X[~S], y[~S])
    >>> curve = forget_scale_curve(
    ...     model, X[S], y[S], refit_estimator=refit,
    ...     forget_scales=[0.01, 0.1, 0.3, 1.0, 10.0],
    ...     scoring="neg_normalized_confusion_distance")
    >>> curve.best_forget_scale
    0.3
    >>> curve.scores["neg_normalized_confusion_distance"].round(2)
    array([-1.  , -1.  ,  0.  , -0.42, -0.43])
    """
    names = [scoring] if isinstance(scoring, str) else list(scoring)
    unknown = [name for name in names if name not in SCORERS]
    if not names or unknown:
        raise ValueError(f"scoring must name scorers among {SCORERS}; got {scoring!r}")
    scales = (
        np.logspace(-2, 2, 41)
        if forget_scales is None
        else np.asarray(forget_scales, dtype=np.float64).ravel()
    )
    if scales.size == 0 or not np.all(np.isfinite(scales) & (scales > 0)):
        raise ValueError("forget_scales must be a non-empty grid of finite values > 0")

    original = _unwrap(estimator)
    check_is_fitted(original)
    theta_star = _get_theta(original).astype(np.float64)
    step = ForgetStep(original, forget_scale=1.0, leave_out=leave_out)
    updated = step.fit(X, y, sample_weight=sample_weight).estimator_
    direction = _get_theta(updated).astype(np.float64) - theta_star
    dtype = _get_theta(updated).dtype

    scorers = {
        name: make_erasure_scorer(
            name,
            refit_estimator=refit_estimator,
            original_estimator=original,
            zero_division=zero_division,
        )
        for name in names
    }
    caches = {name: {} for name in names}
    scores = {name: np.empty(len(scales)) for name in names}
    for i, scale in enumerate(scales):
        _set_theta(updated, (theta_star + scale * direction).astype(dtype))
        for name, scorer in scorers.items():
            scores[name][i] = scorer._score(updated, original, X, y, caches[name])

    best = int(
        np.argmax(np.where(np.isnan(scores[names[0]]), -np.inf, scores[names[0]]))
    )
    noise_floor = None
    if second_refit is not None:
        noise_floor = {
            name: float(scorer._score(_unwrap(second_refit), original, X, y, {}))
            for name, scorer in scorers.items()
        }
    _set_theta(updated, (theta_star + scales[best] * direction).astype(dtype))
    updated.set_params(**_request_params(updated, forget_scale=float(scales[best])))
    return ForgetScaleCurve(
        noise_floor=noise_floor,
        forget_scales=scales,
        scores=scores,
        scoring=names[0],
        best_index=best,
        best_forget_scale=float(scales[best]),
        best_score=float(scores[names[0]][best]),
        best_estimator=updated,
    )
