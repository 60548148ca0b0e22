"""Slim serving models: the plain scikit-learn estimator, without the erasure state.

The erasure state (the inverse curvature, per-class counts and gradient sums) is a
summary of the training rows, and it is large (``n_params²`` numbers). A model that
answers prediction requests needs none of it. The recommended deployment is:

- keep the erasable model where deletion requests are handled (it is the only
  place that can honour them);
- after ``fit`` and after every deletion, ship :func:`serving_model` of it: a plain
  :class:`~sklearn.linear_model.LogisticRegression`,
  :class:`~sklearn.neural_network.MLPClassifier`,
  :class:`~sklearn.multioutput.MultiOutputClassifier` or
  :class:`~sklearn.pipeline.Pipeline` with the current parameters, which predicts
  exactly as the erasable model and carries nothing about individual rows beyond
  the parameters themselves.
"""

import copy

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection._search import BaseSearchCV
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

__all__ = ["serving_model"]

# The fitted attributes a plain estimator needs to predict, per family; everything
# else (the erasure state, optimiser moments, loss curves) stays behind.
_LOGISTIC_ATTRIBUTES = ("classes_", "coef_", "intercept_", "n_iter_")
_MLP_ATTRIBUTES = (
    "classes_",
    "coefs_",
    "intercepts_",
    "n_layers_",
    "n_outputs_",
    "out_activation_",
    "_label_binarizer",
    "n_iter_",
)
_COMMON_ATTRIBUTES = ("n_features_in_", "feature_names_in_")


def serving_model(model):
    """The plain scikit-learn estimator of a fitted erasable model, for deployment.

    Parameters
    ----------
    model : fitted estimator
        An :class:`~sklearn_ssse.ErasableLogisticRegression`,
        :class:`~sklearn_ssse.ErasableMLPClassifier`,
        :class:`~sklearn_ssse.ErasableMultiOutputClassifier`, a
        :class:`~sklearn.pipeline.Pipeline` ending in one (its other steps are
        copied), or a search whose ``best_estimator_`` is one of these.

    Returns
    -------
    plain : estimator
        A new :class:`~sklearn.linear_model.LogisticRegression`,
        :class:`~sklearn.neural_network.MLPClassifier`,
        :class:`~sklearn.multioutput.MultiOutputClassifier` or
        :class:`~sklearn.pipeline.Pipeline` with the same parameters and the current
        fitted weights. ``predict``, ``predict_proba`` and ``decision_function``
        return exactly what ``model``'s do, also after whole classes were forgotten
        (their intercept is ``-inf``, so they are never predicted). It holds no
        erasure state and cannot forget: keep ``model`` for that.

    Examples
    --------
    >>> import pickle
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.serving import serving_model
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[::5], y[::5]
    >>> model = ErasableLogisticRegression(max_iter=1000).fit(X / 16, y)
    >>> plain = serving_model(model.partial_forget(X[:10] / 16, y[:10]))
    >>> type(plain).__name__
    'LogisticRegression'
    >>> bool(np.array_equal(plain.predict_proba(X / 16), model.predict_proba(X / 16)))
    True
    >>> len(pickle.dumps(plain)) < len(pickle.dumps(model)) / 100
    True
    """
    if isinstance(model, BaseSearchCV):
        check_is_fitted(model, "best_estimator_")
        return serving_model(model.best_estimator_)
    if isinstance(model, Pipeline):
        check_is_fitted(model)
        steps = [(name, _plain_step(step)) for name, step in model.steps[:-1]]
        name, last = model.steps[-1]
        return Pipeline(
            steps + [(name, serving_model(last))],
            memory=model.memory,
            transform_input=model.transform_input,
            verbose=model.verbose,
        )
    from .multioutput import ErasableMultiOutputClassifier
    from .neural_network import ErasableMLPClassifier

    if isinstance(model, ErasableMultiOutputClassifier):
        check_is_fitted(model, "estimators_")
        plain = MultiOutputClassifier(
            _plain_params(model.estimator), n_jobs=model.n_jobs
        )
        plain.estimators_ = [serving_model(est) for est in model.estimators_]
        _copy(model, plain, ("classes_",) + _COMMON_ATTRIBUTES)
        return plain
    if isinstance(model, LogisticRegressionCV):
        # The final model is a LogisticRegression(C=C_, l1_ratio=l1_ratio_).
        check_is_fitted(model, "coef_")
        if model.__dict__.get("final_estimator_") is None:
            raise TypeError(
                f"{type(model).__name__} fitted with refit=False has no final "
                "model to serve: fit it with refit=True"
            )
        return serving_model(model.final_estimator_)
    if isinstance(model, LogisticRegression):
        check_is_fitted(model, "coef_")
        plain = _plain_params(model)
        _copy(model, plain, _LOGISTIC_ATTRIBUTES + _COMMON_ATTRIBUTES)
        inactive = _inactive(model)
        if inactive is not None:
            plain.coef_ = plain.coef_.copy()
            plain.intercept_ = plain.intercept_.copy()
            if plain.coef_.shape[0] == 1:  # binary left with one class
                plain.coef_[:] = 0
                plain.intercept_[:] = -np.inf if inactive[1] else np.inf
            else:
                plain.coef_[inactive] = 0
                plain.intercept_[inactive] = -np.inf
        return plain
    if isinstance(model, ErasableMLPClassifier):
        check_is_fitted(model, "coefs_")
        plain = _plain_params(model)
        _copy(model, plain, _MLP_ATTRIBUTES + _COMMON_ATTRIBUTES)
        inactive = _inactive(model)
        if inactive is not None:
            plain.coefs_ = [W.copy() for W in plain.coefs_]
            plain.intercepts_ = [b.copy() for b in plain.intercepts_]
            if plain.n_outputs_ == 1:
                plain.coefs_[-1][:] = 0
                plain.intercepts_[-1][:] = -np.inf if inactive[1] else np.inf
            else:
                plain.coefs_[-1][:, inactive] = 0
                plain.intercepts_[-1][inactive] = -np.inf
        return plain
    raise TypeError(
        f"serving_model does not know {type(model).__name__}: give an erasable "
        "estimator of this library, a Pipeline ending in one, or a search over one"
    )


# What the library's counting preprocessors keep for erasure only.
_COUNTING_ATTRIBUTES = ("category_counts_", "n_observed_", "value_counts_")


def _plain_step(step):
    """A copy of a fitted preprocessing step as plain scikit-learn objects.

    The library's counting encoders and imputer become their scikit-learn
    parents, without the counts (they serve erasure only); a
    :class:`~sklearn.compose.ColumnTransformer` or nested pipeline is copied
    with its steps converted the same way.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    from .compose import (
        ErasableOneHotEncoder,
        ErasableOrdinalEncoder,
        ErasableSimpleImputer,
    )

    if isinstance(step, Pipeline):
        plain = copy.copy(step)
        plain.steps = [(name, _plain_step(s)) for name, s in step.steps]
        return plain
    if isinstance(step, ColumnTransformer):
        plain = copy.deepcopy(step)
        if hasattr(step, "transformers_"):
            plain.transformers_ = [
                (name, _plain_step(trans), columns)
                for name, trans, columns in step.transformers_
            ]
        return plain
    parents = {
        ErasableOneHotEncoder: OneHotEncoder,
        ErasableOrdinalEncoder: OrdinalEncoder,
        ErasableSimpleImputer: SimpleImputer,
    }
    parent = parents.get(type(step))
    if parent is None:
        return copy.deepcopy(step)
    plain = parent(**step.get_params(deep=False))
    dropped = _COUNTING_ATTRIBUTES + (
        ("n_samples_seen_",) if parent is SimpleImputer else ()
    )
    plain.__dict__.update(
        {k: copy.deepcopy(v) for k, v in step.__dict__.items() if k not in dropped}
    )
    return plain


def _plain_params(model):
    """An unfitted plain scikit-learn estimator with ``model``'s parameters."""
    for plain_class in (LogisticRegression, MLPClassifier):
        if isinstance(model, plain_class):
            names = plain_class().get_params(deep=False)
            params = model.get_params(deep=False)
            return plain_class(**{k: params[k] for k in names})
    if isinstance(model, MultiOutputClassifier):
        return MultiOutputClassifier(
            _plain_params(model.estimator), n_jobs=model.n_jobs
        )
    raise TypeError(f"no plain scikit-learn estimator for {type(model).__name__}")


def _copy(source, target, names):
    for name in names:
        if name in source.__dict__:
            setattr(target, name, copy.deepcopy(source.__dict__[name]))


def _inactive(model):
    counts = model.__dict__.get("class_counts_")
    if counts is None:
        try:
            counts = model.class_counts_
        except AttributeError:
            return None
    counts = np.asarray(counts)
    return None if np.all(counts > 0) else counts == 0
