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
  it saw), ``strategy="mean"``, ``"most_frequent"`` or ``"constant"``: updated
  exactly; when remaining training rows had missing values in a feature whose
  mean changed, a ``StandardScaler`` right after it is corrected exactly but the
  final step was trained on the old imputed value, which is warned about
  (:class:`ImputedRowsChangedWarning`; a changed mode is refused);
- :class:`ErasableOneHotEncoder` / :class:`ErasableOrdinalEncoder` (scikit-learn's
  encoders that also count the rows of each category): a category left with no
  rows leaves ``categories_`` as in a refit, and its column leaves the steps after
  it and the final step (coefficient and erasure state); encoders with
  ``categories`` given are stateless;
- :class:`~sklearn.compose.ColumnTransformer` (``remainder``, ``"drop"`` and
  ``"passthrough"`` entries, DataFrame columns by name) and nested pipelines,
  step by step;
- stateless steps (``"passthrough"``, ``FunctionTransformer``, ``Normalizer``,
  ``Binarizer``, ``PolynomialFeatures``) pass through when nothing upstream
  changed (``PolynomialFeatures`` also after a change of scale alone).

A column whose remaining rows are constant ends with ``var_`` 0 and ``scale_`` 1,
as in a refit. Any other fitted step is refused by name
(:class:`UnsupportedStepError`): nothing is passed over silently. This includes
scikit-learn's own :class:`~sklearn.impute.SimpleImputer` and encoders with
``categories="auto"``: they do not store the counts an exact update needs. The
table of what is exact and what is refused, and why, is in ``docs/tabular.md``.
``update_preprocessing=False`` leaves every preprocessing step as fitted (with a
warning naming them: they still summarise the rows) and erases the rows from the
final step only, in the coordinates it was trained in.

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
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    Binarizer,
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    StandardScaler,
)
from sklearn.utils import _safe_indexing
from sklearn.utils._metadata_requests import _routing_enabled, get_routing_for_object
from sklearn.utils.validation import check_is_fitted

from ._curvature import BlockDiagonalInverse
from .base import erasure_lock
from .exceptions import ErasureError

__all__ = [
    "CompositionError",
    "ErasableOneHotEncoder",
    "ErasableOrdinalEncoder",
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
    ``n_samples_seen_`` (and, for ``strategy="most_frequent"``, the count of
    every value), which :func:`forget` needs to update the statistics exactly
    (scikit-learn's imputer does not keep them). Dense input only.

    Attributes
    ----------
    n_observed_ : ndarray of shape (n_features,)
        Values seen per feature, missing ones excluded.
    n_samples_seen_ : int
        Rows seen.
    value_counts_ : list of (ndarray, ndarray)
        ``strategy="most_frequent"`` only: per feature, the values seen (sorted)
        and how many rows held each.

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
        if self.strategy == "most_frequent":
            self.value_counts_ = [
                np.unique(X[observed[:, j], j], return_counts=True)
                for j in range(X.shape[1])
            ]
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

    updated = []  # (step object, updated copy), committed at the end
    if update_preprocessing:
        Xs, relation = _update_chain(pipe.steps[:-1], X, step_params, updated)
    else:
        Xs, relation = X, None
        kept = []
        for name, step in pipe.steps[:-1]:
            if step is None or step == "passthrough":
                continue
            if _has_fitted_state(step):
                kept.append(name)
            Xs = step.transform(Xs)
        if kept:
            warnings.warn(
                f"update_preprocessing=False: the fitted state of {kept} is left as "
                "it was and still summarises the forgotten rows",
                PreprocessingNotErasedWarning,
                stacklevel=3,
            )
    new_final = copy.deepcopy(final)
    relation = _without_moved(relation)
    if relation is not None and (np.any(relation.a != 1) or np.any(relation.c != 0)):
        _reexpress(final_name, new_final, relation.a, relation.c)
        # The rows the final step was trained on, in its new coordinates (the
        # columns a refit no longer has: their offset from the value every
        # remaining row holds there).
        sparse, frame = sp.issparse(Xs), hasattr(Xs, "iloc")
        dense = Xs.toarray() if sparse else np.asarray(Xs, dtype=np.float64)
        new_rows = (dense - relation.c) / relation.a
        if frame:  # set_output(transform="pandas"): keep the feature names
            new_rows = type(Xs)(new_rows, columns=Xs.columns, index=Xs.index)
        Xs = sp.csr_matrix(new_rows) if sparse else new_rows
    new_final.partial_forget(Xs, y, **final_params)
    if relation is not None and relation.gone.any():
        # Every remaining row is 0 there: the remaining objective's minimiser has
        # these coefficients at 0 and the others as a refit without the columns.
        _drop_inputs(final_name, new_final, relation.gone)

    # Everything was computed on copies: commit at once.
    for step, new_step in updated:
        step.__dict__.update(new_step.__dict__)
    publish = getattr(final, "_publish", final.__dict__.update)
    publish(dict(new_final.__dict__))
    return pipe


def _update_chain(steps, X, step_params, updated):
    """Walk ``steps`` (name, fitted step) with the rows ``X`` at their input.

    Appends ``(step, updated copy)`` to ``updated`` and returns the rows as the
    last step's successor saw them at fit and the relation of its old outputs to
    its new ones (``None``: the same).
    """
    Xs, relation = X, None
    for name, step in steps:
        if step is None or step == "passthrough":
            continue
        weights = step_params.get(name, {}).get("sample_weight")
        new_step, relation = _update_step(name, step, Xs, weights, relation, updated)
        if new_step is not None:
            updated.append((step, new_step))
        Xs = step.transform(Xs)  # the rows as this step's successor saw them at fit
    return Xs, relation


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
class _Map(NamedTuple):
    """How a step's old outputs relate to its new ones, per output column.

    ``z_old = a ⊙ z_new + c`` on the columns a refit keeps. ``gone``: columns a
    refit no longer has (a category left with no rows); every remaining row holds
    ``c`` there (``a`` is 1). ``const``: the value every remaining row holds in a
    column, in the old coordinates, where that is known exactly from the
    aggregates (NaN elsewhere). ``moved``: ``(m, old, new)`` per column, ``m``
    remaining rows whose value moved from ``old`` to ``new`` (rows with a missing
    value, when an imputed value changed), or ``None``.
    """

    a: np.ndarray
    c: np.ndarray
    gone: np.ndarray
    const: np.ndarray
    moved: np.ndarray | None = None

    @classmethod
    def identity(cls, d):
        return cls(np.ones(d), np.zeros(d), np.zeros(d, bool), np.full(d, np.nan))


def _expand(relation, d):
    return _Map.identity(d) if relation is None else relation


def _simplify(relation):
    """``None`` for a relation that changes nothing and knows nothing."""
    a, c, gone, const, moved = relation
    a, c = np.asarray(a, float), np.asarray(c, float)
    gone, const = np.asarray(gone, bool), np.asarray(const, float)
    if moved is not None and not np.any(moved[0] > 0):
        moved = None
    if (
        np.all(a == 1)
        and np.all(c == 0)
        and not gone.any()
        and np.isnan(const).all()
        and moved is None
    ):
        return None
    return _Map(a, c, gone, const, moved)


def _without_moved(relation):
    """The relation without ``moved`` rows: only a standard scaler corrects for
    them; every other step sees them as the warning said (trained on the old
    imputed value)."""
    if relation is None or relation.moved is None:
        return relation
    return _simplify(relation._replace(moved=None))


def _update_step(name, step, X, sample_weight, relation, updated):
    """An updated copy of ``step`` without the rows ``X`` (its fit-time inputs).

    Returns ``(new_step or None, relation)``: the copy (``None`` if the step has no
    fitted state of its own) and the :class:`_Map` of the step's old outputs to
    its new ones (``None`` if they are the same). Composite steps append the
    copies of their sub-steps to ``updated``.
    """
    if type(step) is not StandardScaler:
        relation = _without_moved(relation)
    if isinstance(step, Pipeline):
        if relation is not None:
            raise UnsupportedStepError(
                f"step {name!r} (a nested Pipeline) follows a step whose fitted "
                "state changed"
            )
        steps = [(f"{name}__{sub}", s) for sub, s in step.steps]
        _, relation = _update_chain(steps, X, {}, updated)
        return None, relation
    if isinstance(step, ColumnTransformer):
        return _column_transformer(name, step, X, relation, updated)
    for kind, update in _UPDATERS:
        if type(step) is kind:
            return update(name, step, X, sample_weight, relation)
    if isinstance(step, OneHotEncoder | OrdinalEncoder):
        return _plain_encoder(name, step, relation)
    if isinstance(step, PolynomialFeatures):
        return None, _polynomial(name, step, relation)
    if isinstance(step, FunctionTransformer | Normalizer | Binarizer):
        if relation is not None:
            raise UnsupportedStepError(
                f"step {name!r} ({type(step).__name__}) follows a step whose fitted "
                "state changed; its output cannot be related to its old output by a "
                "per-feature affine map, so the final step cannot be re-expressed"
            )
        return None, None
    if isinstance(step, SimpleImputer):
        if step.strategy == "constant" and step.keep_empty_features:
            return None, _stateless(name, step, relation)  # fills what it is told
        reason = (
            "SimpleImputer does not store how many values of each feature it saw, "
            "so its mean cannot be updated from the removed rows alone (use "
            "sklearn_ssse.compose.ErasableSimpleImputer, which does)"
            if step.strategy in ("mean", "most_frequent", "constant")
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
        "cannot update without the training data (supported: ColumnTransformer, "
        "nested Pipeline, StandardScaler, MinMaxScaler, MaxAbsScaler, "
        "ErasableSimpleImputer, ErasableOneHotEncoder, ErasableOrdinalEncoder, "
        "PolynomialFeatures and stateless steps); use update_preprocessing=False "
        "to leave it as it is, or refit"
    )


def _stateless(name, step, relation):
    if relation is not None:
        raise UnsupportedStepError(
            f"step {name!r} ({type(step).__name__}) follows a step whose fitted "
            "state changed"
        )
    return None


def _dense_rows(name, X):
    if sp.issparse(X):
        X = X.toarray()  # the rows of one request: few
    return np.asarray(X, dtype=np.float64)


def _drop_columns(new, keep, names):
    """Keep the input columns ``keep`` of a fitted step's per-feature arrays."""
    for attr in names:
        value = getattr(new, attr, None)
        if value is not None and np.ndim(value) == 1 and len(value) == keep.size:
            setattr(new, attr, np.asarray(value)[keep])
    if hasattr(new, "feature_names_in_"):
        new.feature_names_in_ = new.feature_names_in_[keep]
    new.n_features_in_ = int(keep.sum())


def _column_transformer(name, ct, X, relation, updated):
    if relation is not None:
        raise UnsupportedStepError(
            f"step {name!r} (ColumnTransformer) follows a step whose fitted state "
            "changed; put it first"
        )
    frame = hasattr(ct, "feature_names_in_") and hasattr(X, "iloc")
    n_out = sum(s.stop - s.start for s in ct.output_indices_.values())
    full = _Map.identity(n_out)
    weights = ct.transformer_weights or {}
    widths = {}
    for tname, trans, columns in ct.transformers_:
        out = ct.output_indices_.get(tname, slice(0, 0))
        width = out.stop - out.start
        widths[tname] = width
        if trans == "drop" or width == 0:
            continue
        indices = ct._transformer_to_input_indices[tname]
        key = ct.feature_names_in_[indices] if frame else np.asarray(indices)
        if np.isscalar(columns):
            key = key[0]
        Xt = _safe_indexing(X, key.tolist() if not np.isscalar(key) else key, axis=1)
        if trans == "passthrough":
            continue
        label = f"{name}__{tname}"
        new_trans, sub = _update_step(label, trans, Xt, None, None, updated)
        if new_trans is not None:
            updated.append((trans, new_trans))
        if sub is None:
            continue
        w = weights.get(tname, 1.0)
        full.a[out], full.c[out] = sub.a, w * sub.c
        full.gone[out], full.const[out] = sub.gone, w * sub.const
        widths[tname] = width - int(sub.gone.sum())
    relation = _simplify(full)
    if relation is None or not relation.gone.any():
        return None, relation
    new = copy.copy(ct)
    new.__dict__ = dict(ct.__dict__)
    start, indices = 0, {}
    for tname, _ in sorted(ct.output_indices_.items(), key=lambda kv: kv[1].start):
        indices[tname] = slice(start, start + widths.get(tname, 0))
        start += widths.get(tname, 0)
    new.output_indices_ = {
        k: s if s.stop > s.start else slice(0, 0)
        for k, s in ((k, indices.get(k, slice(0, 0))) for k in ct.output_indices_)
    }
    names_out = ct.__dict__.get("_transformers_feature_names_out")
    if names_out is not None:
        new._transformers_feature_names_out = names_out[~relation.gone]
    return new, relation


# -- encoders ----------------------------------------------------------------------
def _category_counts(encoder, X):
    """Rows per category of each feature of ``X`` (a list), and the unknown ones."""
    X_int, X_mask = encoder._transform(
        X, handle_unknown="ignore", ensure_all_finite="allow-nan"
    )
    counts = [
        np.bincount(X_int[X_mask[:, i], i], minlength=len(cats))
        for i, cats in enumerate(encoder.categories_)
    ]
    return counts, ~X_mask


class _CountingEncoder:
    """Counts the rows of each category at ``fit`` (``category_counts_``)."""

    def fit(self, X, y=None):
        """Fit as the parent encoder, then count the rows of each category.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data to determine the categories of each feature.
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted encoder.
        """
        super().fit(X, y)
        if self._infrequent_enabled:
            self.category_counts_ = None
        else:
            self.category_counts_, _ = _category_counts(self, X)
        return self


class ErasableOneHotEncoder(_CountingEncoder, OneHotEncoder):
    """:class:`~sklearn.preprocessing.OneHotEncoder` that also counts the rows of
    each category.

    The same parameters, fit and transform; ``fit`` additionally stores
    ``category_counts_``, which :func:`forget` needs: a category left with no
    rows leaves ``categories_`` (as a refit would drop it), and the final step's
    coefficients for its column go with it.

    Attributes
    ----------
    category_counts_ : list of ndarray
        Rows per category, in the order of ``categories_`` (``None`` with
        infrequent categories: not supported by :func:`forget`).

    Examples
    --------
    >>> from sklearn_ssse.compose import ErasableOneHotEncoder
    >>> enc = ErasableOneHotEncoder().fit([["a"], ["b"], ["a"]])
    >>> enc.category_counts_[0].tolist()
    [2, 1]
    """


class ErasableOrdinalEncoder(_CountingEncoder, OrdinalEncoder):
    """:class:`~sklearn.preprocessing.OrdinalEncoder` that also counts the rows of
    each category.

    The same parameters, fit and transform; ``fit`` additionally stores
    ``category_counts_`` for :func:`forget`. A category left with no rows leaves
    ``categories_`` when the codes of the others do not change (it is the last
    one, or the missing-value category); otherwise the request is refused.

    Attributes
    ----------
    category_counts_ : list of ndarray
        Rows per category, in the order of ``categories_``.

    Examples
    --------
    >>> from sklearn_ssse.compose import ErasableOrdinalEncoder
    >>> enc = ErasableOrdinalEncoder().fit([["a"], ["b"], ["a"]])
    >>> enc.category_counts_[0].tolist()
    [2, 1]
    """


def _plain_encoder(name, encoder, relation):
    kind = type(encoder).__name__
    if relation is not None:
        raise UnsupportedStepError(
            f"step {name!r} ({kind}) follows a step whose fitted state changed"
        )
    fixed = not isinstance(encoder.categories, str)
    if fixed and not encoder._infrequent_enabled:
        return None, None  # categories given: a refit keeps them all
    raise UnsupportedStepError(
        f"step {name!r} ({kind}): scikit-learn's encoder does not count the rows of "
        "each category, so it is unknown whether a category is left with none (a "
        "refit would drop it); use sklearn_ssse.compose.Erasable"
        f"{kind.removeprefix('Erasable')}, which counts them, or give categories="
    )


def _counting_encoder(name, encoder, X, sample_weight, relation):
    kind = type(encoder).__name__
    if relation is not None:
        raise UnsupportedStepError(
            f"step {name!r} ({kind}) follows a step whose fitted state changed"
        )
    if encoder.category_counts_ is None or encoder._infrequent_enabled:
        raise UnsupportedStepError(
            f"step {name!r} ({kind}): infrequent categories (min_frequency / "
            "max_categories) are regrouped by a refit; not supported"
        )
    counts, unknown = _category_counts(encoder, X)
    if np.any(unknown):
        rows, cols = np.nonzero(unknown)
        raise NotTrainingRowsError(
            f"step {name!r}: row {rows[0]}, feature {cols[0]} holds a category the "
            "encoder never saw; the rows must be raw training rows"
        )
    left = [old - k for old, k in zip(encoder.category_counts_, counts)]
    if any(np.any(n < 0) for n in left):
        raise NotTrainingRowsError(
            f"step {name!r}: the rows hold more rows of a category than the "
            "encoder saw (rows already forgotten?)"
        )
    n_left = int(left[0].sum()) if left else 0
    if n_left <= 0:
        raise CompositionError(f"step {name!r}: cannot forget every training row")
    new = copy.deepcopy(encoder)
    new.category_counts_ = left
    fixed = not isinstance(encoder.categories, str)
    empty = [np.zeros(len(n), bool) if fixed else n == 0 for n in left]
    if isinstance(encoder, OneHotEncoder):
        return new, _one_hot_update(name, encoder, new, left, empty)
    return new, _ordinal_update(name, encoder, new, left, empty)


def _one_hot_update(name, encoder, new, left, empty):
    if any(e.any() for e in empty) and encoder.drop is not None:
        raise UnsupportedStepError(
            f"step {name!r} (ErasableOneHotEncoder): a category is left with no "
            f"rows and drop={encoder.drop!r}: which column a refit drops could "
            "change; use drop=None"
        )
    # One output column per category (drop=None): constant on the remaining rows
    # where its count is 0 (value 0) or all of them (value 1).
    gone = np.concatenate(empty) if empty else np.zeros(0, bool)
    n_left = left[0].sum()
    flat = np.concatenate(left)
    const = np.where(flat == 0, 0.0, np.where(flat == n_left, 1.0, np.nan))
    if encoder.drop_idx_ is not None:  # drop given, nothing emptied: columns kept
        keep = [
            np.ones(len(n), bool) if d is None else np.arange(len(n)) != d
            for n, d in zip(left, encoder._drop_idx_after_grouping)
        ]
        const = const[np.concatenate(keep)]
        gone = gone[np.concatenate(keep)]
    if gone.any():
        new.categories_ = [c[~e] for c, e in zip(encoder.categories_, empty)]
        new.category_counts_ = [n[~e] for n, e in zip(left, empty)]
        new._n_features_outs = [len(c) for c in new.categories_]
    d = const.size
    return _simplify(_Map(np.ones(d), np.zeros(d), gone, const))


def _ordinal_update(name, encoder, new, left, empty):
    missing = getattr(encoder, "_missing_indices", {})
    for i, e in enumerate(empty):
        if not e.any():
            continue
        # Codes are positions among the non-missing categories: emptying the last
        # of them, or the missing one, leaves every other code as it was.
        known = np.arange(len(e)) != missing.get(i, -1)
        last = np.flatnonzero(known)[-1]
        if np.any(e & known & (np.arange(len(e)) != last)) or (
            e[last] and e[known].sum() > 1
        ):
            raise UnsupportedStepError(
                f"step {name!r} (ErasableOrdinalEncoder): feature {i} has a "
                "category left with no rows that is not the last one; a refit "
                "would renumber the categories after it (not an affine map)"
            )
    if not any(e.any() for e in empty):
        return None
    new.categories_ = [c[~e] for c, e in zip(encoder.categories_, empty)]
    new.category_counts_ = [n[~e] for n, e in zip(left, empty)]
    # The missing-value category sorts last: it moves down past emptied ones.
    new._missing_indices = {
        i: j - int(empty[i][:j].sum()) for i, j in missing.items() if not empty[i][j]
    }
    return None


# -- imputers ----------------------------------------------------------------------
def _erasable_imputer(name, imputer, X, sample_weight, relation):
    if imputer.strategy not in ("mean", "most_frequent", "constant"):
        raise UnsupportedStepError(
            f"step {name!r} (ErasableSimpleImputer): strategy={imputer.strategy!r} "
            "is not a sum over rows and cannot be updated without the remaining "
            "data; use strategy='mean', 'most_frequent' or 'constant'"
        )
    if relation is not None:
        raise UnsupportedStepError(
            f"step {name!r} (ErasableSimpleImputer) follows a step whose fitted "
            "state changed; put the imputer first"
        )
    from sklearn.impute._base import _get_mask

    X = np.asarray(X, dtype=None if imputer.strategy != "mean" else np.float64)
    observed = ~_get_mask(X, imputer.missing_values)
    k = observed.sum(axis=0)
    n_old = np.asarray(imputer.n_observed_)
    n_new = n_old - k
    rows_left = imputer.n_samples_seen_ - X.shape[0]
    if np.any(n_new < 0) or rows_left <= 0:
        raise CompositionError(
            f"step {name!r}: cannot forget more values than the imputer saw"
        )
    stats = imputer.statistics_
    kept = ~_get_mask(np.asarray(stats)[None, :], np.nan)[0]
    if np.any(kept & (n_new == 0)) and not imputer.keep_empty_features:
        raise CompositionError(
            f"step {name!r}: the rows hold the last observed values of some "
            "features; a refit would drop those features"
        )
    new = copy.deepcopy(imputer)
    new.n_observed_ = n_new
    new.n_samples_seen_ = rows_left
    if imputer.strategy == "constant":
        return new, None
    if imputer.strategy == "mean":
        sums = np.where(observed, X, 0.0).sum(axis=0)
        stats = np.asarray(stats, dtype=float)
        new_stats = np.where(
            kept & (n_new > 0),
            (n_old * stats - sums) / np.maximum(n_new, 1),
            stats,
        )
        new.statistics_ = new_stats.astype(imputer.statistics_.dtype)
    else:
        new_stats = _most_frequent_update(name, imputer, new, X, observed)
    changed = kept & (n_new < rows_left) & (new_stats != stats)
    if np.any(changed):
        features = np.flatnonzero(changed).tolist()
        if imputer.strategy == "most_frequent":
            raise CompositionError(
                f"step {name!r}: the most frequent value of feature(s) "
                f"{features[:10]} changes, and remaining training rows had missing "
                "values there: they would read another category, which the steps "
                "after it were not trained on; refit"
            )
        warnings.warn(
            f"step {name!r}: the imputed mean of feature(s) {features[:10]} changed, "
            "and remaining training rows had missing values there: the final step "
            "was trained on the old imputed value in those rows, which this update "
            "does not correct (exact only when those rows are few; a StandardScaler "
            "right after the imputer is corrected exactly)",
            ImputedRowsChangedWarning,
            stacklevel=4,
        )
        d = stats.size
        m = np.where(changed, rows_left - n_new, 0).astype(float)
        moved = np.vstack([m, np.asarray(stats, float), np.asarray(new_stats, float)])
        identity = _Map.identity(d)
        return new, _simplify(identity._replace(moved=moved))
    return new, None


def _most_frequent_update(name, imputer, new, X, observed):
    stats = np.array(imputer.statistics_, copy=True)
    values = []
    for j, (uniques, counts) in enumerate(imputer.value_counts_):
        counts = counts.copy()
        seen = X[observed[:, j], j]
        if seen.size:
            at = np.searchsorted(uniques, seen)
            at = np.minimum(at, len(uniques) - 1)
            if np.any(uniques[at] != seen):
                raise NotTrainingRowsError(
                    f"step {name!r}: feature {j} holds a value the imputer never "
                    "saw; the rows must be raw training rows"
                )
            np.subtract.at(counts, at, 1)
        keep = counts > 0
        uniques, counts = uniques[keep], counts[keep]
        if counts.size:  # the smallest of the most frequent, as scikit-learn
            stats[j] = uniques[np.argmax(counts)]
        values.append((uniques, counts))
    new.value_counts_ = values
    new.statistics_ = stats
    return stats


# -- scalers -----------------------------------------------------------------------
_SCALER_ARRAYS = (
    "mean_",
    "var_",
    "scale_",
    "n_samples_seen_",
    "data_min_",
    "data_max_",
    "data_range_",
    "min_",
    "max_abs_",
)


def _standard_scaler(name, scaler, X, sample_weight, relation):
    X = _dense_rows(name, X)
    k, d = X.shape
    w = np.ones(k) if sample_weight is None else np.asarray(sample_weight, float)
    observed = ~np.isnan(X)
    n = np.broadcast_to(np.asarray(scaler.n_samples_seen_, dtype=float), (d,))
    n_S = (w[:, None] * observed).sum(axis=0)
    n_R = n - n_S
    rel = _expand(relation, d)
    a, c, gone, const = rel.a, rel.c, rel.gone, rel.const
    if np.any((n_R <= 0) & ~gone):
        raise CompositionError(
            f"step {name!r}: cannot forget {n_S.max():g} rows (weighted) from a "
            f"scaler fitted on {n.min():g}"
        )
    new = copy.deepcopy(scaler)
    new.n_samples_seen_ = _like(scaler.n_samples_seen_, n_R)
    if scaler.mean_ is None:  # with_mean=False, with_std=False: an identity map
        if gone.any():
            _drop_columns(new, ~gone, _SCALER_ARRAYS)
        return new, relation
    Xz = np.where(observed, X, 0.0)
    mean = np.asarray(scaler.mean_, float)
    sum_S = w @ Xz
    mean_S = np.divide(sum_S, n_S, out=np.zeros(d), where=n_S > 0)
    mean_R = (n * mean - sum_S) / np.maximum(n_R, 1e-300)
    known = ~np.isnan(const)
    mean_R = np.where(known, const, mean_R)  # every remaining row holds const
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
        shift = n_S * n_R / n * (mean_S - mean_R) ** 2
        M2_R = M2 - M2_S - shift
        if rel.moved is not None:  # m rows of value old now read new
            m, old, new_value = rel.moved
            mean_moved = mean_R + m * (new_value - old) / np.maximum(n_R, 1e-300)
            M2_R = (
                M2_R
                + m * ((new_value - mean_R) ** 2 - (old - mean_R) ** 2)
                - n_R * (mean_moved - mean_R) ** 2
            )
            mean_R = mean_moved
        # What is left below the rounding of the subtraction is no variance: a
        # refit of rows that are constant there finds 0 (then scale_ is 1).
        noise = 64 * np.finfo(float).eps * (M2 + M2_S + shift)
        M2_R = np.where(known | (M2_R <= noise), 0.0, M2_R)
        var_R = M2_R / np.maximum(n_R, 1e-300)
    elif rel.moved is not None:
        m, old, new_value = rel.moved
        mean_R = mean_R + m * (new_value - old) / np.maximum(n_R, 1e-300)
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
                np.sqrt(new.var_), copy=False, constant_mask=constant | (new.var_ == 0)
            )
    s_old = scaler.scale_ if scaler.with_std else np.ones(d)
    s_new = new.scale_ if scaler.with_std else np.ones(d)
    mu_old = mean if scaler.with_mean else np.zeros(d)
    mu_new = new.mean_ if scaler.with_mean else np.zeros(d)
    a_out = a * s_new / s_old
    c_out = (a * mu_new + c - mu_old) / s_old
    const_out = (const - mu_old) / s_old
    if gone.any():  # the old output at the value every remaining row holds
        a_out, c_out = np.where(gone, 1.0, a_out), np.where(gone, const_out, c_out)
        _drop_columns(new, ~gone, _SCALER_ARRAYS)
    return new, _simplify(_Map(a_out, c_out, gone, const_out))


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
    rel = _expand(relation, X.shape[1])
    live = ~rel.gone  # a column a refit no longer has needs no extreme
    _check_range(
        name,
        np.where(live, X, np.nan),
        scaler.data_min_,
        scaler.data_max_,
        "minimum/maximum",
    )
    new = copy.deepcopy(scaler)
    _count_update(name, scaler, X, new)
    if relation is None:
        return new, None
    from sklearn.preprocessing._data import _handle_zeros_in_scale

    a, c = rel.a, rel.c
    low, high = scaler.feature_range
    dtype = scaler.data_min_.dtype
    new.data_min_ = ((scaler.data_min_ - c) / a).astype(dtype)
    new.data_max_ = ((scaler.data_max_ - c) / a).astype(dtype)
    new.data_range_ = new.data_max_ - new.data_min_
    new.scale_ = (high - low) / _handle_zeros_in_scale(new.data_range_, copy=True)
    new.min_ = low - new.data_min_ * new.scale_
    s, m = scaler.scale_, scaler.min_
    a_out = a * s / new.scale_
    c_out = m + c * s - a * s * new.min_ / new.scale_
    const_out = rel.const * s + m
    if rel.gone.any():
        a_out, c_out = np.where(live, a_out, 1.0), np.where(live, c_out, const_out)
        _drop_columns(new, live, _SCALER_ARRAYS)
    return new, _simplify(_Map(a_out, c_out, rel.gone, const_out))


def _maxabs_scaler(name, scaler, X, sample_weight, relation):
    X = _dense_rows(name, X)
    rel = _expand(relation, X.shape[1])
    live = ~rel.gone
    top = scaler.max_abs_
    _check_range(
        name, np.where(live, np.abs(X), np.nan), -np.inf, top, "maximum absolute value"
    )
    new = copy.deepcopy(scaler)
    _count_update(name, scaler, X, new)
    if relation is None:
        return new, None
    a, c = rel.a, rel.c
    if np.any((c != 0) & live):
        raise UnsupportedStepError(
            f"step {name!r} (MaxAbsScaler) follows a step whose centring changed: "
            "its maximum absolute value is unknown without the data"
        )
    from sklearn.preprocessing._data import _handle_zeros_in_scale

    new.max_abs_ = (top / a).astype(top.dtype)
    new.scale_ = _handle_zeros_in_scale(new.max_abs_, copy=True)
    a_out = a * new.scale_ / scaler.scale_
    const_out = rel.const / scaler.scale_
    if rel.gone.any():
        a_out = np.where(live, a_out, 1.0)
        c_out = np.where(live, 0.0, const_out)
        _drop_columns(new, live, _SCALER_ARRAYS)
    else:
        c_out = np.zeros_like(a)
    return new, _simplify(_Map(a_out, c_out, rel.gone, const_out))


def _polynomial(name, step, relation):
    """PolynomialFeatures is stateless; a per-feature scaling maps through it."""
    if relation is None:
        return None
    if relation.gone.any() or np.any(relation.c != 0):
        raise UnsupportedStepError(
            f"step {name!r} (PolynomialFeatures) follows a step whose centring "
            "changed (or a column a refit no longer has): the products of shifted "
            "inputs are not a per-feature affine map of the new ones, so the final "
            "step cannot be re-expressed; put the scaler after it, or refit"
        )
    powers = step.powers_
    a = np.prod(relation.a[None, :] ** powers, axis=1)
    d = a.size
    return _simplify(_Map(a, np.zeros(d), np.zeros(d, bool), np.full(d, np.nan)))


_UPDATERS = [
    (StandardScaler, _standard_scaler),
    (MinMaxScaler, _minmax_scaler),
    (MaxAbsScaler, _maxabs_scaler),
    (ErasableSimpleImputer, _erasable_imputer),
    (ErasableOneHotEncoder, _counting_encoder),
    (ErasableOrdinalEncoder, _counting_encoder),
]


def _like(template, value):
    """``value`` with the type of scikit-learn's ``n_samples_seen_`` ``template``."""
    dtype = np.asarray(template).dtype
    if np.issubdtype(dtype, np.integer):
        value = np.rint(value)
    if np.ndim(template) == 0 and np.all(value == value[0]):
        return dtype.type(value[0])
    return np.asarray(value, dtype=dtype)


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
    certificate = state.certificate_state
    if certificate is not None:
        # The certificate's Gram and bounds live in the old coordinates: later
        # requests are recorded as not certified (verify_erasure still proves).
        from .certificate import uncertified

        _, certificate = uncertified(
            certificate.folded(),
            "the preprocessing changed (the model was re-expressed in new input "
            "coordinates): use verify_erasure with the remaining rows",
        )
    new_state = state.replace(
        certificate_state=certificate,
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


def _drop_inputs(name, model, gone):
    """Remove the input columns ``gone`` from a fitted erasable model, in place.

    Every remaining training row is 0 in them, so the remaining objective splits:
    those coefficients are 0 at its minimiser and the others minimise the
    objective without the columns, which is what a refit fits. The stored
    inverse curvature of the kept coordinates is the Schur complement
    ``(M⁻¹)_kk − (M⁻¹)_kg ((M⁻¹)_gg)⁻¹ (M⁻¹)_gk``: the inverse of ``M_kk``.
    """
    from .linear_model import ErasableLogisticRegression
    from .multioutput import ErasableMultiOutputClassifier

    if isinstance(model, ErasableMultiOutputClassifier):
        for est in model.estimators_:
            _drop_inputs(name, est, gone)
        model.n_features_in_ = int((~gone).sum())
        if hasattr(model, "feature_names_in_"):
            model.feature_names_in_ = model.feature_names_in_[~gone]
        return
    if not isinstance(model, ErasableLogisticRegression):
        raise UnsupportedStepError(
            f"the final step {name!r} ({type(model).__name__}): a category was left "
            "with no rows, and removing its input column is implemented for "
            "ErasableLogisticRegression (and ErasableMultiOutputClassifier of them) "
            "only; give the encoder categories=, or refit"
        )
    maths = model._erasure_maths()
    m, width, n_out = maths.n_features, maths.width, maths.n_outputs
    keep_width = np.ones(width, bool)
    keep_width[:m] = ~gone
    keep = np.tile(keep_width, n_out)
    state = model._erasure_state()
    inverse = state.curvature
    if not isinstance(inverse, BlockDiagonalInverse):
        raise UnsupportedStepError(
            f"the final step {name!r}: a category was left with no rows, and its "
            f"column cannot be removed from the stored curvature "
            f"({type(inverse).__name__}; implemented for block-diagonal inverses); "
            "give the encoder categories=, or refit"
        )
    bounds, blocks, start_new = [], [], 0
    for (start, stop), inv in zip(inverse.bounds, inverse.inverses):
        k = keep[start:stop]
        if not k.any():
            continue
        inv64 = np.asarray(inv, dtype=np.float64)
        if k.all():
            block = inv64
        else:
            g = ~k
            Ikg = inv64[np.ix_(k, g)]
            block = inv64[np.ix_(k, k)] - Ikg @ np.linalg.solve(
                inv64[np.ix_(g, g)], Ikg.T
            )
        size = int(k.sum())
        bounds.append((start_new, start_new + size))
        blocks.append(((block + block.T) / 2).astype(inv.dtype))
        start_new += size

    def cut(v, axis=-1):
        return None if v is None else np.compress(keep, v, axis=axis)

    cert = state.certificate_state
    if cert is not None:

        def cut_width(v, axis=-1):
            return None if v is None else np.compress(keep_width, v, axis=axis)

        gram = cert.gram
        cert = cert.replace(
            gram=None if gram is None else gram[np.ix_(keep_width, keep_width)],
            gram_diagonal=cut_width(cert.gram_diagonal),
            gram_removed=cut_width(cert.gram_removed),
            gershgorin_sums=cut_width(cert.gershgorin_sums),
            gram_drift=cut_width(cert.gram_drift),
            drift_at=cut(cert.drift_at),
            excess_diagonal=cut(cert.excess_diagonal),
            excess_factor=cut(cert.excess_factor, axis=0),
            penalty=cut(cert.penalty),
        )
    new_state = state.replace(
        curvature=BlockDiagonalInverse(bounds, blocks),
        point=cut(state.point),
        prior=cut(state.prior),
        data_diagonal=cut(state.data_diagonal),
        residual_gradient=cut(state.residual_gradient),
        class_gradient_sums=cut(state.class_gradient_sums),
        coefficients=cut(state.coefficients),
        certificate_state=cert,
    )
    attributes = {
        "coef_": np.ascontiguousarray(model.coef_[:, ~gone]),
        "n_features_in_": int((~gone).sum()),
        "erasure_state_": new_state,
    }
    if hasattr(model, "feature_names_in_"):
        attributes["feature_names_in_"] = model.feature_names_in_[~gone]
    model._publish(attributes)
