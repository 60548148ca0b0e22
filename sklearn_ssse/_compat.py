"""Shims over scikit-learn's private helpers, across the supported releases (1.8, 1.9).

Import these names from here, not from scikit-learn, wherever their signature or
behaviour differs between the supported releases.
"""

import inspect

import sklearn
from sklearn.linear_model import LogisticRegressionCV
from sklearn.utils._array_api import get_namespace
from sklearn.utils.validation import (
    _check_sample_weight as _sklearn_check_sample_weight,
)

__all__ = [
    "LOGISTIC_CV_SCORING_DEFAULT",
    "SKLEARN_VERSION",
    "_check_sample_weight",
    "check_same_namespace",
]

SKLEARN_VERSION = tuple(int(part) for part in sklearn.__version__.split(".")[:2])

# LogisticRegressionCV's default ``scoring``: "warn" in 1.9 (a deprecation cycle
# towards "neg_log_loss"), None in 1.8 (where "warn" is not a valid value).
LOGISTIC_CV_SCORING_DEFAULT = (
    inspect.signature(LogisticRegressionCV.__init__).parameters["scoring"].default
)

# scikit-learn 1.9 added ``allow_all_zero_weights`` (and, by default, refuses
# weights that are all zero); 1.8 accepts any weights.
_HAS_ALLOW_ALL_ZERO = (
    "allow_all_zero_weights"
    in inspect.signature(_sklearn_check_sample_weight).parameters
)


def _check_sample_weight(sample_weight, X, *, allow_all_zero_weights=False, **kwargs):
    """scikit-learn 1.9's ``_check_sample_weight`` on every supported release."""
    if _HAS_ALLOW_ALL_ZERO:
        return _sklearn_check_sample_weight(
            sample_weight, X, allow_all_zero_weights=allow_all_zero_weights, **kwargs
        )
    sample_weight = _sklearn_check_sample_weight(sample_weight, X, **kwargs)
    xp, _ = get_namespace(sample_weight)
    if not allow_all_zero_weights and bool(xp.all(sample_weight == 0)):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sample_weight


try:  # scikit-learn >= 1.9
    from sklearn.utils._array_api import check_same_namespace
except ImportError:  # scikit-learn 1.8

    def check_same_namespace(X, estimator, *, attribute, method):
        """scikit-learn 1.9's check: ``X`` and ``estimator.<attribute>`` share a
        namespace and a device (only under ``array_api_dispatch``)."""
        import scipy.sparse as sp
        from sklearn import get_config
        from sklearn.utils._array_api import (
            _is_numpy_namespace,
            get_namespace_and_device,
        )

        if not get_config()["array_api_dispatch"]:
            return
        a_xp, _, a_device = get_namespace_and_device(getattr(estimator, attribute))
        X_xp, _, X_device = get_namespace_and_device(X)
        if (X_xp == a_xp and X_device == a_device) or (
            _is_numpy_namespace(a_xp) and _is_numpy_namespace(X_xp)
        ):
            return
        if X_device is None:
            kind = "sparse array" if sp.issparse(X) else "array-like"
            msg = (
                f"Array namespace used during fit ({a_xp.__name__}) is not "
                f"compatible with the {kind} input passed to {method}."
            )
        elif X_xp != a_xp:
            msg = (
                f"Array namespaces used during fit ({a_xp.__name__}) and {method} "
                f"({X_xp.__name__}) differ."
            )
        else:
            msg = f"Devices used in fit ({a_device}) and {method} ({X_device}) differ."
        raise ValueError(
            f"Inputs passed to {type(estimator).__name__}.{method}() must use the "
            f"same namespace and the same device as those passed to fit(). {msg}"
        )
