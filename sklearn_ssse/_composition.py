"""Walking a fitted composition down to the erasable model that decides.

:func:`unwrap` takes a :class:`~sklearn.pipeline.Pipeline`, a search with
``refit`` (``best_estimator_``), an :class:`~sklearn_ssse.ErasableLogisticRegressionCV`
(``final_estimator_``) or a bare erasable estimator, nested in any order, and
returns the final erasable estimator with the function that maps raw rows (as
given to the composition's ``fit``) to that estimator's inputs. The evidence
functions (:func:`~sklearn_ssse.certificate.erasure_audit`,
:func:`~sklearn_ssse.certificate.verify_erasure`,
:func:`~sklearn_ssse.metrics.erasure_report`) use it to accept any of them.
"""

from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

__all__ = ["unwrap"]


def _identity(X):
    return X


def unwrap(model):
    """The final erasable estimator of a fitted composition, and its input map.

    Parameters
    ----------
    model : fitted estimator
        A pipeline, a search (``refit`` set), an
        :class:`~sklearn_ssse.ErasableLogisticRegressionCV` (``refit=True``) or a
        bare estimator, nested in any order.

    Returns
    -------
    final : estimator
        The estimator that holds the erasure state (a bare estimator is returned
        as it is).
    to_inputs : callable
        ``to_inputs(X_raw)``: the rows as ``final`` sees them (the pipeline's
        preprocessing, as fitted now).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        The composition is not fitted (or a search has no ``best_estimator_``).
    ValueError
        An ``ErasableLogisticRegressionCV`` fitted with ``refit=False``: there is
        no final model.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse._composition import unwrap
    >>> X, y = load_iris(return_X_y=True)
    >>> pipe = make_pipeline(StandardScaler(), ErasableLogisticRegression()).fit(X, y)
    >>> final, to_inputs = unwrap(pipe)
    >>> final is pipe[-1], to_inputs(X[:2]).round(2).tolist()[0][:2]
    (True, [-0.9, 1.02])
    """
    if isinstance(model, BaseSearchCV):
        check_is_fitted(model, "best_estimator_")
        return unwrap(model.best_estimator_)
    if isinstance(model, Pipeline):
        check_is_fitted(model)
        final, inner = unwrap(model.steps[-1][1])
        if len(model.steps) == 1:
            return final, inner
        head = model[:-1]
        return final, lambda X: inner(head.transform(X))
    if "final_estimator_" in getattr(model, "__dict__", {}):
        if model.final_estimator_ is None:
            raise ValueError(
                f"{type(model).__name__} fitted with refit=False has no final model "
                "(and keeps no erasure state): fit it with refit=True"
            )
        return unwrap(model.final_estimator_)
    return model, _identity
