"""Checks of ``partial_forget`` that every erasable estimator must pass.

They complement scikit-learn's ``parametrize_with_checks`` the way
imbalanced-learn's checks complement it for ``fit_resample``: use
:func:`parametrize_with_forget_checks` next to it in a test module.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.utils import get_tags

__all__ = ["partial_forget_checks", "parametrize_with_forget_checks"]


def _data(estimator, dtype=np.float64, n_classes=3, seed=0):
    """Small, well-conditioned data of the kind ``estimator`` takes."""
    tags = get_tags(estimator)
    if not tags.target_tags.single_output:
        X, y = make_multilabel_classification(
            n_samples=60, n_features=5, n_classes=3, random_state=seed
        )
    else:
        X, y = make_classification(
            n_samples=60,
            n_features=5,
            n_informative=3,
            n_classes=n_classes,
            n_clusters_per_class=1,
            random_state=seed,
        )
    return X.astype(dtype), y


def _fitted_state(estimator):
    return pickle.dumps(estimator.__dict__)


def check_partial_forget_returns_self(name, estimator_orig):
    X, y = _data(estimator_orig)
    est = clone(estimator_orig).fit(X, y)
    assert est.partial_forget(X[:3], y[:3]) is est


def check_partial_forget_keeps_dtype_and_shapes(name, estimator_orig):
    for dtype in (np.float32, np.float64):
        X, y = _data(estimator_orig, dtype=dtype)
        est = clone(estimator_orig).fit(X, y)
        before = est.predict_proba(X)
        est.partial_forget(X[:4], y[:4])
        after = est.predict_proba(X)
        if isinstance(before, list):
            assert [a.shape for a in after] == [b.shape for b in before]
            assert all(a.dtype == b.dtype for a, b in zip(after, before))
        else:
            assert after.shape == before.shape
            assert after.dtype == before.dtype
        assert est.predict(X).shape == np.asarray(y).shape


def check_partial_forget_empty_is_noop(name, estimator_orig):
    X, y = _data(estimator_orig)
    est = clone(estimator_orig).fit(X, y)
    state = _fitted_state(est)
    est.partial_forget(X[:0], y[:0])
    assert _fitted_state(est) == state


def check_partial_forget_bad_input_leaves_model_unchanged(name, estimator_orig):
    X, y = _data(estimator_orig)
    est = clone(estimator_orig).fit(X, y)
    state = _fitted_state(est)
    X_nan = X[:3].copy()
    X_nan[0, 0] = np.nan
    bad_requests = [
        (X[:3, :-1], y[:3]),  # wrong number of features
        (X_nan, y[:3]),  # NaN
        (X[:3], y[:2]),  # mismatched lengths
        (np.repeat(X, 2, axis=0), np.concatenate([y, y])),  # more rows than remain
    ]
    for X_bad, y_bad in bad_requests:
        with pytest.raises(ValueError):
            est.partial_forget(X_bad, y_bad)
        assert _fitted_state(est) == state


def check_partial_forget_requires_fit(name, estimator_orig):
    from sklearn.exceptions import NotFittedError

    X, y = _data(estimator_orig)
    with pytest.raises(NotFittedError):
        clone(estimator_orig).partial_forget(X[:2], y[:2])


def check_partial_forget_pickle_roundtrip(name, estimator_orig):
    X, y = _data(estimator_orig)
    est = clone(estimator_orig).fit(X, y)
    restored = pickle.loads(pickle.dumps(est))
    est.partial_forget(X[:5], y[:5])
    restored.partial_forget(X[:5], y[:5])
    expected, got = est.predict_proba(X), restored.predict_proba(X)
    if isinstance(expected, list):
        for e, g in zip(expected, got):
            np.testing.assert_array_equal(e, g)
    else:
        np.testing.assert_array_equal(expected, got)


_CHECKS = [
    check_partial_forget_returns_self,
    check_partial_forget_keeps_dtype_and_shapes,
    check_partial_forget_empty_is_noop,
    check_partial_forget_bad_input_leaves_model_unchanged,
    check_partial_forget_requires_fit,
    check_partial_forget_pickle_roundtrip,
]


def partial_forget_checks(estimator):
    """Yield ``(estimator, check)`` pairs; call ``check(name, estimator)``."""
    for check in _CHECKS:
        yield estimator, check


def parametrize_with_forget_checks(estimators):
    """Pytest parametrization over every ``partial_forget`` check of each estimator.

    Parameters
    ----------
    estimators : list of estimator instances

    Returns
    -------
    decorator
        To decorate a test ``test_fn(estimator, check)``.
    """
    pairs = [pair for est in estimators for pair in partial_forget_checks(est)]
    ids = [f"{type(est).__name__}-{check.__name__}" for est, check in pairs]
    return pytest.mark.parametrize("estimator, check", pairs, ids=ids)
