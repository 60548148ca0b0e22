"""One way to forget rows from a fitted model, whatever it is composed of.

:func:`forget` takes the **raw** rows (as given to ``fit``) and a fitted

- erasable estimator (anything with ``partial_forget``): it calls it;
- :class:`~sklearn.pipeline.Pipeline` (also from ``make_pipeline``): it updates the
  fitted state of every preprocessing step exactly, re-expresses the final erasable
  estimator in the new preprocessing's coordinates, and erases the rows from it;
- :class:`~sklearn.model_selection.GridSearchCV` /
  :class:`~sklearn.model_selection.RandomizedSearchCV` (``refit`` set): it forgets
  from ``best_estimator_`` (bare or a pipeline) and warns that the search's results
  describe the data before the deletion.

**Why a function and not an ``ErasablePipeline``.** A subclass of ``Pipeline`` with a
``partial_forget`` method (imbalanced-learn's route for ``fit_resample``) would force
users to rebuild the pipelines they already have, including those inside searches
and those loaded from disk, and a search object would still need the same code. A
function works on the plain scikit-learn objects as they are; what it needs from a
step is its fitted state, which scikit-learn documents. The price is that
``pipe.partial_forget`` does not exist: call ``forget(pipe, X, y)``.

**Preprocessing.** The fitted state of these steps is a sum over rows, so removing
rows updates it exactly, with only those rows:

- :class:`~sklearn.preprocessing.StandardScaler` (``mean_``, ``var_``, ``scale_``,
  ``n_samples_seen_``; ``with_mean``/``with_std`` either way, sample weights, NaN);
- :class:`~sklearn.preprocessing.MinMaxScaler` and
  :class:`~sklearn.preprocessing.MaxAbsScaler` when no removed row attains a
  feature's minimum or maximum (otherwise the new extreme is unknown without the
  data: refused with :class:`ExtremeValueError`);
- :class:`ErasableSimpleImputer` (a ``SimpleImputer`` that also counts the values
  it saw), ``strategy="mean"``: its means are updated exactly; when remaining
  training rows had missing values in a feature whose mean changed, the steps
  after it were trained on the old imputed value, which is warned about
  (:class:`ImputedRowsChangedWarning`);
- stateless steps (``"passthrough"``, ``FunctionTransformer``, ``Normalizer``,
  ``Binarizer``) pass through when nothing upstream changed.

Any other fitted step is refused by name (:class:`UnsupportedStepError`):
nothing is passed over silently. This includes
:class:`~sklearn.impute.SimpleImputer`: its ``strategy="mean"`` statistic is a sum
over rows, but scikit-learn does not store the per-feature count of observed
values it was divided by, and a changed imputed value would also change the
remaining rows that had missing values, on which the final step was trained
(other strategies are not sums at all). ``update_preprocessing=False`` leaves every
preprocessing step as fitted (with a warning naming them: they still summarise the
rows) and erases the rows from the final step only, in the coordinates it was
trained in.

**The classifier stays consistent with the new preprocessing.** Every supported
step is an affine map per feature, so the final step's old inputs are an affine
function of its new ones, ``z_old = a ⊙ z_new + c``. A linear model is then
re-expressed exactly in the new coordinates (``coef ← a ⊙ coef``,
``intercept ← intercept + coef · c``: the same predictions on raw rows), together
with its stored erasure state: gradients ``T⁻ᵀ g``, curvature ``T⁻ᵀ M T⁻¹`` with the
penalty's own curvature and gradient taken in the new coordinates (the refit
penalises the new coefficients, not the old ones; this correction is one dense
solve per curvature block). The erasure step then runs in the new coordinates on
the rows as the new pipeline sees them: it approximates the refit of the whole
pipeline, with the same approximation as for a bare model. With ``block_size`` an
int, the coupling of an intercept to the coefficients of other blocks is dropped
(the block-diagonal approximation itself). Re-expression is implemented for
:class:`~sklearn_ssse.ErasableLogisticRegression`,
:class:`~sklearn_ssse.ErasableMLPClassifier` (its first layer is the linear map that
sees the inputs) and :class:`~sklearn_ssse.ErasableMultiOutputClassifier` of them;
other final steps are refused by name when the preprocessing changed.

**Rows given in the wrong space.** Rows passed to :func:`forget` must be raw. What
can be detected is refused (:class:`NotTrainingRowsError`): a row outside a
min-max or max-abs scaler's fitted range, or farther from a standard scaler's mean
than any training row can be (``|x − μ| ≤ σ·√((n − w)/w)`` for a row of weight
``w``), cannot have been a training row of that step. Rows that were already
transformed usually fail this test on their first scaler.
"""

import copy
import warnings

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.impute import SimpleImputer
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    Binarizer,
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    StandardScaler,
)
from sklearn.utils._metadata_requests import _routing_enabled, get_routing_for_object
from sklearn.utils.validation import check_is_fitted

from ._curvature import BlockDiagonalInverse
from .base import erasure_lock
from .exceptions import ErasureError

__all__ = [
    "CompositionError",
    "ErasableSimpleImputer",
    "ExtremeValueError",
    "ImputedRowsChangedWarning",
    "NotTrainingRowsError",
    "PreprocessingNotErasedWarning",
    "StaleSearchWarning",
    "UnsupportedStepError",
    "forget",
]


class CompositionError(ErasureError):
    """A composed model cannot have these rows erased exactly; nothing was changed."""


class UnsupportedStepError(CompositionError):
    """A step whose fitted state this library cannot update (named in the message)."""


class ExtremeValueError(CompositionError):
    """A removed row sets a fitted minimum or maximum, unknown without the data."""


class NotTrainingRowsError(CompositionError):
    """The rows cannot have been training rows of a step (transformed twice?)."""


class StaleSearchWarning(UserWarning):
    """A search's ``cv_results_`` and ``best_params_`` describe the old data."""


class PreprocessingNotErasedWarning(UserWarning):
    """Fitted preprocessing left as it was, still summarising the forgotten rows."""


class ImputedRowsChangedWarning(UserWarning):
    """A new imputed mean changes remaining rows that had missing values."""


class ErasableSimpleImputer(SimpleImputer):
    """:class:`~sklearn.impute.SimpleImputer` that also counts what it saw.

    The same parameters, fit and transform; ``fit`` additionally stores
    ``n_observed_`` (per feature, the number of values that were not missing) and
    ``n_samples_seen_``, which :func:`forget` needs to update a
    ``strategy="mean"`` statistic exactly (scikit-learn's imputer does not keep
    them). Dense input only.

    Attributes
    ----------
    n_observed_ : ndarray of shape (n_features,)
        Values seen per feature, missing ones excluded.
    n_samples_seen_ : int
        Rows seen.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ssse.compose import ErasableSimpleImputer
    >>> imp = ErasableSimpleImputer().fit([[1.0, np.nan], [3.0, 4.0]])
    >>> imp.n_observed_.tolist(), imp.n_samples_seen_
    ([2, 1], 2)
    """

    def fit(self, X, y=None):
        """Fit as :class:`~sklearn.impute.SimpleImputer`, then count.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted imputer.
        """
        super().fit(X, y)
        from sklearn.impute._base import _get_mask

        if sp.issparse(X):
            raise TypeError("ErasableSimpleImputer takes dense input only")
        X = np.asarray(X)
        observed = ~_get_mask(X, self.missing_values)
        self.n_observed_ = observed.sum(axis=0)
        self.n_samples_seen_ = X.shape[0]
        return self


def forget(estimator, X, y, *, sample_weight=None, update_preprocessing=True, **params):
    """Erase training rows from a fitted estimator, pipeline or search, in place.

    Read more in the module docstring (:mod:`sklearn_ssse.compose`).

    Parameters
    ----------
    estimator : fitted estimator, Pipeline, GridSearchCV or RandomizedSearchCV
        A bare erasable estimator (with ``partial_forget``), a pipeline whose final
        step is one, or a search with ``refit`` set whose ``best_estimator_`` is
        either.

    X : array-like of shape (n_rows, n_features)
        The rows to forget, **raw**: as given to the pipeline's ``fit``.

    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Their labels.

    sample_weight : array-like of shape (n_rows,), default=None
        The weights these rows had in ``fit``. Without metadata routing, a
        pipeline gives them to its final step only (as ``pipe.fit`` with
        ``<final>__sample_weight``); give the weights a scaler saw at ``fit`` as
        ``<step>__sample_weight``. With routing enabled
        (``sklearn.set_config(enable_metadata_routing=True)``), each
        preprocessing step gets them if it requested them for ``fit``, and the
        final step if it requested them for ``partial_forget``
        (``set_partial_forget_request(sample_weight=True)``).

    update_preprocessing : bool, default=True
        ``False``: leave the fitted preprocessing as it is (warning that it still
        summarises the rows) and erase the rows from the final step only.

    **params : dict
        ``<step>__<name>`` parameters for the steps of a pipeline (without
        routing); other metadata for ``partial_forget`` (with routing, or for a
        bare estimator).

    Returns
    -------
    estimator : object
        The same object, updated. On any error nothing is changed.

    Raises
    ------
    CompositionError
        A step cannot be updated exactly (:class:`UnsupportedStepError`,
        :class:`ExtremeValueError`) or the rows cannot be its training rows
        (:class:`NotTrainingRowsError`); the estimator's own ``ValueError`` for
        bad requests.

    Warns
    -----
    StaleSearchWarning
        For a search: ``cv_results_``, ``best_params_``, ``best_score_`` and
        ``best_index_`` still describe the data before the deletion.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.compose import forget
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> pipe = make_pipeline(
    ...     StandardScaler(), ErasableLogisticRegression(curvature="hessian")
    ... ).fit(X, y)
    >>> forget(pipe, X[:5], y[:5])  # raw rows
    Pipeline(...)
    >>> int(pipe[0].n_samples_seen_), pipe[-1].n_forgotten_
    (564, 5)
    """
    if isinstance(estimator, BaseSearchCV):
        return _forget_search(
            estimator, X, y, sample_weight, update_preprocessing, params
        )
    if isinstance(estimator, Pipeline):
        return _forget_pipeline(
            estimator, X, y, sample_weight, update_preprocessing, params
        )
    if not hasattr(estimator, "partial_forget"):
        raise UnsupportedStepError(
            f"{type(estimator).__name__} has no partial_forget: give an erasable "
            "estimator, a Pipeline ending in one, or a search (refit=True) over one"
        )
    if _routing_enabled():
        params = _routed(estimator, "partial_forget", sample_weight, params)
    elif sample_weight is not None:
        params = {**params, "sample_weight": sample_weight}
    return estimator.partial_forget(X, y, **params)


# -- searches ----------------------------------------------------------------------
def _forget_search(search, X, y, sample_weight, update_preprocessing, params):
    if not hasattr(search, "best_estimator_"):
        raise CompositionError(
            f"{type(search).__name__} has no best_estimator_ (refit=False or not "
            "fitted): there is no fitted model to forget from"
        )
    forget(
        search.best_estimator_,
        X,
        y,
        sample_weight=sample_weight,
        update_preprocessing=update_preprocessing,
        **params,
    )
    search.n_forgotten_ = getattr(search, "n_forgotten_", 0) + _num_rows(X)
    warnings.warn(
        f"{type(search).__name__}: best_estimator_ forgot the rows, but cv_results_, "
        "best_params_, best_score_ and best_index_ still describe the search on the "
        f"data before the deletion ({search.n_forgotten_} rows forgotten since); "
        "run the search again to choose hyper-parameters without them",
        StaleSearchWarning,
        stacklevel=3,
    )
    return search


# -- pipelines ---------------------------------------------------------------------
def _forget_pipeline(pipe, X, y, sample_weight, update_preprocessing, params):
    check_is_fitted(pipe)
    final_name, final = pipe.steps[-1]
    if final is None or final == "passthrough" or not hasattr(final, "partial_forget"):
        raise UnsupportedStepError(
            f"the final step {final_name!r} ({type(final).__name__}) has no "
            "partial_forget"
        )
    # Requests through one pipeline are serialised by its final step's lock.
    with erasure_lock(final):
        return _forget_pipeline_locked(
            pipe, X, y, sample_weight, update_preprocessing, params
        )


def _forget_pipeline_locked(pipe, X, y, sample_weight, update_preprocessing, params):
    final_name, final = pipe.steps[-1]
    step_params, final_params = _pipeline_params(pipe, sample_weight, params)

    Xs = X
    relation = None  # z_old = a ⊙ z_new + c at the current step's input; None: same
    updated = []  # (step object, updated copy)
    kept = []
    for name, step in pipe.steps[:-1]:
        if step is None or step == "passthrough":
            continue
        weights = step_params[name].get("sample_weight")
        if update_preprocessing:
            new_step, relation = _update_step(name, step, Xs, weights, relation)
            if new_step is not None:
                updated.append((step, new_step))
        elif _has_fitted_state(step):
            kept.append(name)
        Xs = step.transform(Xs)  # the rows as this step's successor saw them at fit

    if kept:
        warnings.warn(
            f"update_preprocessing=False: the fitted state of {kept} is left as it "
            "was and still summarises the forgotten rows",
            PreprocessingNotErasedWarning,
            stacklevel=3,
        )
    new_final = copy.deepcopy(final)
    if relation is not None:
        _reexpress(final_name, new_final, *relation)
        # The rows the final step was trained on, in its new coordinates.
        a, c = relation
        Xs = (np.asarray(Xs, dtype=np.float64) - c) / a
    new_final.partial_forget(Xs, y, **final_params)

    # Everything was computed on copies: commit at once.
    for step, new_step in updated:
        step.__dict__.update(new_step.__dict__)
    publish = getattr(final, "_publish", final.__dict__.update)
    publish(dict(new_final.__dict__))
    return pipe


def _pipeline_params(pipe, sample_weight, params):
    names = [name for name, _ in pipe.steps]
    step_params = {name: {} for name in names}
    final_name, final = pipe.steps[-1]
    if _routing_enabled():
        for name, step in pipe.steps[:-1]:
            if step is None or step == "passthrough":
                continue
            step_params[name] = _routed(step, "fit", sample_weight, params)
        return step_params, _routed(final, "partial_forget", sample_weight, params)
    for key, value in params.items():
        name, sep, param = key.partition("__")
        if not sep or name not in step_params:
            raise TypeError(
                f"{key!r}: without metadata routing, pipeline parameters are given "
                f"as <step>__<parameter> with a step among {names}"
            )
        step_params[name][param] = value
    final_params = step_params.pop(final_name)
    if sample_weight is not None:
        final_params.setdefault("sample_weight", sample_weight)
    return step_params, final_params


def _routed(obj, method, sample_weight, params):
    """The metadata ``obj`` requested for ``method`` (routing enabled)."""
    given = dict(params)
    if sample_weight is not None:
        given["sample_weight"] = sample_weight
    if method == "partial_forget":
        requests = getattr(obj, "_get_partial_forget_request", None)
        if requests is None:
            return {}
        requests = requests()
    else:
        requests = get_routing_for_object(obj).fit.requests
    routed = {}
    for param, alias in requests.items():
        key = param if alias is True else alias
        if isinstance(key, str) and key in given:
            routed[param] = given[key]
        elif alias is None and param in given:
            raise ValueError(
                f"[{param}] is passed but is not explicitly set as requested or not "
                f"requested for {type(obj).__name__}.{method}; call "
                f"set_{method}_request({param}=True/False) on it"
            )
    return routed


def _has_fitted_state(step):
    return not isinstance(step, FunctionTransformer | Normalizer | Binarizer)


def _num_rows(X):
    return X.shape[0] if hasattr(X, "shape") else len(X)


# -- preprocessing steps -----------------------------------------------------------
def _update_step(name, step, X, sample_weight, relation):
    """An updated copy of ``step`` without the rows ``X`` (its fit-time inputs).

    Returns ``(new_step or None, relation)``: the copy (``None`` if the step has no
    fitted state) and the affine relation ``(a, c)`` of the step's old outputs to
    its new ones (``None`` if they are the same).
    """
    for kind, update in _UPDATERS:
        if type(step) is kind:
            return update(name, step, X, sample_weight, relation)
    if isinstance(step, FunctionTransformer | Normalizer | Binarizer):
        if relation is not None:
            raise UnsupportedStepError(
                f"step {name!r} ({type(step).__name__}) follows a step whose fitted "
                "state changed; its output cannot be related to its old output by a "
                "per-feature affine map, so the final step cannot be re-expressed"
            )
        return None, None
    if isinstance(step, SimpleImputer):
        reason = (
            "SimpleImputer does not store how many values of each feature it saw, "
            "so its mean cannot be updated from the removed rows alone (use "
            "sklearn_ssse.compose.ErasableSimpleImputer, which does)"
            if step.strategy == "mean"
            else f"strategy={step.strategy!r} is not a sum over rows: it cannot be "
            "updated without the remaining data"
        )
        raise UnsupportedStepError(
            f"step {name!r} (SimpleImputer): {reason}; besides, a new imputed value "
            "changes the remaining rows with missing values, which the final step "
            "was trained on. Refit, or use update_preprocessing=False"
        )
    raise UnsupportedStepError(
        f"step {name!r} ({type(step).__name__}) has fitted state that this library "
        "cannot update without the training data (supported: StandardScaler, "
        "MinMaxScaler, MaxAbsScaler and stateless steps); use "
        "update_preprocessing=False to leave it as it is, or refit"
    )


def _dense_rows(name, X):
    if sp.issparse(X):
        raise UnsupportedStepError(
            f"step {name!r}: sparse input is not supported for the exact update"
        )
    return np.asarray(X, dtype=np.float64)


def _standard_scaler(name, scaler, X, sample_weight, relation):
    X = _dense_rows(name, X)
    k, d = X.shape
    w = np.ones(k) if sample_weight is None else np.asarray(sample_weight, float)
    observed = ~np.isnan(X)
    n = np.broadcast_to(np.asarray(scaler.n_samples_seen_, dtype=float), (d,))
    n_S = (w[:, None] * observed).sum(axis=0)
    n_R = n - n_S
    if np.any(n_R <= 0):
        raise CompositionError(
            f"step {name!r}: cannot forget {n_S.max():g} rows (weighted) from a "
            f"scaler fitted on {n.min():g}"
        )
    new = copy.deepcopy(scaler)
    new.n_samples_seen_ = _like(scaler.n_samples_seen_, n_R)
    a, c = relation if relation is not None else (np.ones(d), np.zeros(d))
    if scaler.mean_ is None:  # with_mean=False, with_std=False: an identity map
        return new, relation
    Xz = np.where(observed, X, 0.0)
    mean = np.asarray(scaler.mean_, float)
    sum_S = w @ Xz
    mean_S = np.divide(sum_S, n_S, out=np.zeros(d), where=n_S > 0)
    mean_R = (n * mean - sum_S) / n_R
    if scaler.var_ is not None:
        var = np.asarray(scaler.var_, float)
        M2 = n * var
        # No training row of weight w lies farther from the mean than this.
        bound = np.sqrt(M2 * (n - w[:, None]) / (n * w[:, None])) + 1e-7 * (
            np.sqrt(var) + np.abs(mean)
        )
        far = observed & (np.abs(X - mean) > bound)
        if np.any(far):
            rows, cols = np.nonzero(far)
            raise NotTrainingRowsError(
                f"step {name!r}: row {rows[0]}, feature {cols[0]} lies farther from "
                "the fitted mean than any training row can; the rows must be raw, as "
                "given to the pipeline's fit (were they transformed already?)"
            )
        dev = np.where(observed, X - mean_S, 0.0)
        M2_S = w @ (dev * dev)
        M2_R = M2 - M2_S - n_S * n_R / n * (mean_S - mean_R) ** 2
        var_R = np.maximum(M2_R, 0.0) / n_R
    # The statistics in the new input coordinates.
    new_mean = (mean_R - c) / a
    new.mean_ = new_mean.astype(scaler.mean_.dtype)
    if scaler.var_ is not None:
        new.var_ = (var_R / a**2).astype(scaler.var_.dtype)
        if scaler.with_std:
            from sklearn.preprocessing._data import (
                _handle_zeros_in_scale,
                _is_constant_feature,
            )

            constant = _is_constant_feature(new.var_, new.mean_, new.n_samples_seen_)
            new.scale_ = _handle_zeros_in_scale(
                np.sqrt(new.var_), copy=False, constant_mask=constant
            )
    s_old = scaler.scale_ if scaler.with_std else np.ones(d)
    s_new = new.scale_ if scaler.with_std else np.ones(d)
    mu_old = mean if scaler.with_mean else np.zeros(d)
    mu_new = new.mean_ if scaler.with_mean else np.zeros(d)
    out = (a * s_new / s_old, (a * mu_new + c - mu_old) / s_old)
    return new, _simplify(out)


def _check_range(name, X, low, high, what):
    finite = ~np.isnan(X)
    outside = finite & ((X < low) | (X > high))
    if np.any(outside):
        rows, cols = np.nonzero(outside)
        raise NotTrainingRowsError(
            f"step {name!r}: row {rows[0]}, feature {cols[0]} lies outside the "
            f"fitted {what}; the rows must be raw, as given to the pipeline's fit "
            "(were they transformed already?)"
        )
    touching = finite & ((X == low) | (X == high))
    if np.any(touching):
        features = np.unique(np.nonzero(touching)[1]).tolist()
        raise ExtremeValueError(
            f"step {name!r} ({what}): the rows attain the fitted extreme of "
            f"feature(s) {features[:10]}{'...' if len(features) > 10 else ''}; the "
            "new extreme is unknown without the remaining data, so the step cannot "
            "be updated exactly (refit, or use update_preprocessing=False)"
        )


def _count_update(name, scaler, X, new):
    n = scaler.n_samples_seen_ - X.shape[0]
    if n <= 0:
        raise CompositionError(f"step {name!r}: cannot forget every training row")
    new.n_samples_seen_ = n


def _minmax_scaler(name, scaler, X, sample_weight, relation):
    X = _dense_rows(name, X)
    _check_range(name, X, scaler.data_min_, scaler.data_max_, "minimum/maximum")
    new = copy.deepcopy(scaler)
    _count_update(name, scaler, X, new)
    if relation is None:
        return new, None
    from sklearn.preprocessing._data import _handle_zeros_in_scale

    a, c = relation
    low, high = scaler.feature_range
    dtype = scaler.data_min_.dtype
    new.data_min_ = ((scaler.data_min_ - c) / a).astype(dtype)
    new.data_max_ = ((scaler.data_max_ - c) / a).astype(dtype)
    new.data_range_ = new.data_max_ - new.data_min_
    new.scale_ = (high - low) / _handle_zeros_in_scale(new.data_range_, copy=True)
    new.min_ = low - new.data_min_ * new.scale_
    s, m = scaler.scale_, scaler.min_
    out = (a * s / new.scale_, m + c * s - a * s * new.min_ / new.scale_)
    return new, _simplify(out)


def _maxabs_scaler(name, scaler, X, sample_weight, relation):
    X = _dense_rows(name, X)
    top = scaler.max_abs_
    _check_range(name, np.abs(X), -np.inf, top, "maximum absolute value")
    new = copy.deepcopy(scaler)
    _count_update(name, scaler, X, new)
    if relation is None:
        return new, None
    a, c = relation
    if np.any(c != 0):
        raise UnsupportedStepError(
            f"step {name!r} (MaxAbsScaler) follows a step whose centring changed: "
            "its maximum absolute value is unknown without the data"
        )
    from sklearn.preprocessing._data import _handle_zeros_in_scale

    new.max_abs_ = (top / a).astype(top.dtype)
    new.scale_ = _handle_zeros_in_scale(new.max_abs_, copy=True)
    return new, _simplify((a * new.scale_ / scaler.scale_, np.zeros_like(a)))


def _mean_imputer(name, imputer, X, sample_weight, relation):
    if imputer.strategy != "mean":
        raise UnsupportedStepError(
            f"step {name!r} (ErasableSimpleImputer): strategy={imputer.strategy!r} "
            "is not a sum over rows; only strategy='mean' can be updated"
        )
    if relation is not None:
        raise UnsupportedStepError(
            f"step {name!r} (ErasableSimpleImputer) follows a step whose fitted "
            "state changed; put the imputer first"
        )
    from sklearn.impute._base import _get_mask

    X = _dense_rows(name, X)
    observed = ~_get_mask(X, imputer.missing_values)
    k = observed.sum(axis=0)
    n_old = np.asarray(imputer.n_observed_)
    n_new = n_old - k
    rows_left = imputer.n_samples_seen_ - X.shape[0]
    if np.any(n_new < 0) or rows_left <= 0:
        raise CompositionError(
            f"step {name!r}: cannot forget more values than the imputer saw"
        )
    kept = ~np.isnan(imputer.statistics_)  # features the imputer kept
    if np.any(kept & (n_new == 0)):
        raise CompositionError(
            f"step {name!r}: the rows hold the last observed values of some "
            "features; their mean would be undefined"
        )
    sums = np.where(observed, X, 0.0).sum(axis=0)
    stats = np.asarray(imputer.statistics_, dtype=float)
    new_stats = np.where(
        kept & (n_new > 0),
        (n_old * stats - sums) / np.maximum(n_new, 1),
        stats,
    )
    new = copy.deepcopy(imputer)
    new.statistics_ = new_stats.astype(imputer.statistics_.dtype)
    new.n_observed_ = n_new
    new.n_samples_seen_ = rows_left
    # Remaining rows with a missing value now read the new mean: the data that
    # later steps were trained on changed, which no step below accounts for.
    imputed = kept & (n_new < rows_left) & (new_stats != stats)
    if np.any(imputed):
        features = np.flatnonzero(imputed).tolist()
        warnings.warn(
            f"step {name!r}: the imputed mean of feature(s) {features[:10]} changed, "
            "and remaining training rows had missing values there: the steps after "
            "it were trained on the old imputed value, which this update does not "
            "correct (exact only when those rows are few)",
            ImputedRowsChangedWarning,
            stacklevel=4,
        )
    return new, None


_UPDATERS = [
    (StandardScaler, _standard_scaler),
    (MinMaxScaler, _minmax_scaler),
    (MaxAbsScaler, _maxabs_scaler),
    (ErasableSimpleImputer, _mean_imputer),
]


def _like(template, value):
    """``value`` with the type of scikit-learn's ``n_samples_seen_`` ``template``."""
    dtype = np.asarray(template).dtype
    if np.issubdtype(dtype, np.integer):
        value = np.rint(value)
    if np.ndim(template) == 0 and np.all(value == value[0]):
        return dtype.type(value[0])
    return np.asarray(value, dtype=dtype)


def _simplify(relation):
    a, c = relation
    if np.all(a == 1) and np.all(c == 0):
        return None
    return np.asarray(a, float), np.asarray(c, float)


# -- the final step in new coordinates ---------------------------------------------
def _reexpress(name, model, a, c):
    """Re-express a fitted erasable model for inputs ``z_new = (z_old − c) / a``."""
    from .linear_model import ErasableLogisticRegression
    from .multioutput import ErasableMultiOutputClassifier
    from .neural_network import ErasableMLPClassifier

    if isinstance(model, ErasableMultiOutputClassifier):
        for est in model.estimators_:
            _reexpress(name, est, a, c)
        return
    if isinstance(model, ErasableLogisticRegression):
        if not model.fit_intercept and np.any(c != 0):
            raise UnsupportedStepError(
                f"the final step {name!r} has fit_intercept=False, so it cannot "
                "follow a change of the centring of its inputs"
            )
        _reexpress_state(model, a, c, *_logistic_input_map(model, a, c))
        return
    if isinstance(model, ErasableMLPClassifier):
        _reexpress_state(model, a, c, *_mlp_input_map(model, a, c))
        return
    raise UnsupportedStepError(
        f"the final step {name!r} ({type(model).__name__}) cannot be re-expressed "
        "in the coordinates of the updated preprocessing (implemented for "
        "ErasableLogisticRegression, ErasableMLPClassifier and "
        "ErasableMultiOutputClassifier of them); use update_preprocessing=False"
    )


def _logistic_input_map(model, a, c):
    """``T`` of a linear model: coefficients scaled, intercepts coupled to them."""
    maths = model._erasure_maths()
    m, width, n_out = maths.n_features, maths.width, maths.n_outputs
    scale = np.ones(maths.n_params)
    scale.reshape(n_out, width)[:, :m] = a
    if not maths.fit_intercept:
        empty = np.zeros((0, m), dtype=int)
        return scale, np.zeros(0, dtype=int), empty, empty.astype(float)
    rows = np.arange(n_out)[:, None] * width
    coupled = rows + np.arange(m)
    u = np.tile(c / maths.intercept_scaling, (n_out, 1))
    return scale, rows[:, 0] + m, coupled, u


def _mlp_input_map(model, a, c):
    """``T`` of a network: only the first layer sees the inputs."""
    maths = model._erasure_maths()
    m, h = model.coefs_[0].shape
    scale = np.ones(maths.n_params)
    scale[: m * h] = np.repeat(a, h)  # W₁ is (m, h), flattened row by row
    coupled = np.arange(m)[None, :] * h + np.arange(h)[:, None]  # unit k's weights
    return scale, m * h + np.arange(h), coupled, np.tile(c, (h, 1))


def _reexpress_state(model, a, c, scale, intercepts, coupled, u):
    """Change of variables ``θ_new = T θ`` of a model and its erasure state.

    ``T`` scales each coordinate by ``scale`` and adds ``u[k] · θ[coupled[k]]`` to
    the intercept ``θ[intercepts[k]]``: for inputs ``z_old = a ⊙ z_new + c`` the
    model's function of the raw rows is unchanged. Data terms transform as
    ``g ← T⁻ᵀ g`` and ``K ← T⁻ᵀ K T⁻¹``; the penalty and the damping stay
    diagonal in the new coordinates, as a fit there would make them. The new
    state and parameters are published at once.

    Erasing first (in the old coordinates) and re-expressing after, with one
    Newton correction for the penalty's change, gives the same parameters: the
    state's bookkeeping is linear, so the order does not matter (measured).
    """
    state = model._erasure_state()
    inverse = state.curvature
    if not isinstance(inverse, BlockDiagonalInverse):
        raise UnsupportedStepError(
            f"the stored curvature ({type(inverse).__name__}) cannot be re-expressed "
            "in new coordinates (implemented for BlockDiagonalInverse)"
        )
    n_params = scale.size
    # Each coupled coordinate belongs to one intercept: its owner and its u.
    owner = np.full(n_params, -1)
    owner[coupled.ravel()] = np.repeat(intercepts, coupled.shape[1])
    weight = np.zeros(n_params)
    weight[coupled.ravel()] = u.ravel()
    linked = owner >= 0

    def T(theta):
        theta = np.asarray(theta, dtype=np.float64)
        out = theta * scale
        np.add.at(out, owner[linked], weight[linked] * theta[linked])
        return out

    def T_inv_T(g):  # T⁻ᵀ g on the last axis
        g = np.asarray(g, dtype=np.float64)
        out = g / scale
        out[..., linked] -= weight[linked] / scale[linked] * g[..., owner[linked]]
        return out

    _, penalty_strength, penalized = model._objective_scaling()
    P = penalty_strength * np.asarray(penalized, float)
    flat = model._get_flat_params()
    theta = flat.astype(np.float64)
    theta_new = T(theta)
    residual = T_inv_T(state.residual_gradient - P * theta) + P * theta_new

    # The curvature: M_new⁻¹ = T_b (M_old + T_bᵀ Λ T_b − Λ)⁻¹ T_bᵀ per block
    # (couplings across blocks dropped: the block-diagonal approximation), and
    # the diagonal of its data term, diag(T⁻ᵀ D T⁻¹).
    Lam = np.asarray(state.prior, float)
    old_diagonal = state.data_diagonal
    new_diagonal = None
    if old_diagonal is not None:
        new_diagonal = np.asarray(old_diagonal, float) / scale**2
    blocks = []
    for (start, stop), inv in zip(inverse.bounds, inverse.inverses):
        size = stop - start
        local = np.arange(start, stop)
        inside = linked[start:stop] & (owner[start:stop] >= start)
        inside &= owner[start:stop] < stop
        j, b = local[inside], owner[start:stop][inside]
        # T_b = S + B Vᵀ: S diagonal, B picks the K intercepts, V (size × K) holds
        # each intercept's couplings; everything below is O(size² K) but the solve.
        heads, k_of = np.unique(b, return_inverse=True)
        K = heads.size
        s_b = scale[start:stop]
        V = np.zeros((size, K))
        V[j - start, k_of] = weight[j]
        lam = Lam[start:stop]
        lam_K = lam[heads - start]
        # Δ = T_bᵀ Λ T_b − Λ = diag(λ(s² − 1)) + W C Wᵀ with W = [B V].
        W = np.zeros((size, 2 * K))
        W[heads - start, np.arange(K)] = 1.0
        W[:, K:] = V
        Cw = np.zeros((2 * K, 2 * K))
        Cw[:K, K:] = Cw[K:, :K] = Cw[K:, K:] = np.diag(lam_K)
        inv64 = np.asarray(inv, dtype=np.float64)
        system = inv64 * (lam * (s_b**2 - 1))[None, :] + (inv64 @ W) @ Cw @ W.T
        system[np.diag_indices(size)] += 1.0
        core = np.linalg.solve(system, inv64)  # (M_old + Δ)⁻¹
        core = s_b[:, None] * core + W[:, :K] @ (V.T @ core)  # T_b core
        new_inv = core * s_b[None, :] + (core @ V) @ W[:, :K].T  # (…) T_bᵀ
        blocks.append(((new_inv + new_inv.T) / 2).astype(inv.dtype))
        if new_diagonal is not None and j.size:
            unit = np.zeros((size, K))
            unit[heads - start, np.arange(K)] = 1.0
            try:
                columns = scipy.linalg.solve(inv64, unit, assume_a="pos")
            except np.linalg.LinAlgError:
                columns = np.linalg.solve(inv64, unit)
            # M_old[j, owner(j)]: off the diagonal, so data term only.
            D_jb = columns[j - start, k_of]
            w = weight[j]
            new_diagonal[j] = (
                old_diagonal[j] - 2 * w * D_jb + w**2 * old_diagonal[b]
            ) / scale[j] ** 2

    # Rows in the new coordinates are bounded by (old bound + ‖c‖) / min(a).
    from .base import _power_of_two_above

    bound = _power_of_two_above((state.row_norm_bound + np.linalg.norm(c)) / a.min())
    sums = state.class_gradient_sums
    new_state = state.replace(
        curvature=BlockDiagonalInverse(inverse.bounds, blocks),
        point=T(state.point).astype(state.point.dtype),
        residual_gradient=residual.astype(state.residual_gradient.dtype),
        class_gradient_sums=None if sums is None else T_inv_T(sums).astype(sums.dtype),
        data_diagonal=(None if new_diagonal is None else np.maximum(new_diagonal, 0.0)),
        row_norm_bound=bound,
        coefficients=theta_new.astype(state.coefficients.dtype),
    )
    attributes = model._flat_params_attributes(theta_new.astype(flat.dtype))
    attributes["erasure_state_"] = new_state
    model._publish(attributes)
