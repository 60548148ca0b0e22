"""sklearn-ssse: erase training rows from fitted scikit-learn classifiers.

SSSE (single-step sample erasure) updates a fitted model in one closed-form
Newton-type step, preconditioned by the inverse empirical Fisher (or the Hessian),
using only the rows to forget.
"""

from ._curvature import BlockDiagonalInverse, CurvatureInverse
from ._state import ErasureState, RequestRecord
from .base import ErasableMixin
from .certificate import erasure_audit, verify_erasure
from .exceptions import (
    ErasureError,
    ErasureNumericalError,
    IncompatibleStateError,
    InvalidRequestError,
    RefitRecommendedError,
    RefitRecommendedWarning,
)
from .ledger import ErasureLedger
from .linear_model import ErasableLogisticRegression, ErasableLogisticRegressionCV
from .model_selection import ForgetStep, forget_scale_curve, make_erasure_scorer
from .multioutput import ErasableMultiOutputClassifier
from .neural_network import ErasableMLPClassifier

__all__ = [
    "BlockDiagonalInverse",
    "CurvatureInverse",
    "ErasableLogisticRegression",
    "ErasableLogisticRegressionCV",
    "ErasableMLPClassifier",
    "ErasableMixin",
    "ErasableMultiOutputClassifier",
    "ErasureError",
    "ErasureLedger",
    "ErasureNumericalError",
    "ErasureState",
    "IncompatibleStateError",
    "InvalidRequestError",
    "RefitRecommendedError",
    "RefitRecommendedWarning",
    "RequestRecord",
    "erasure_audit",
    "ForgetStep",
    "forget_scale_curve",
    "make_erasure_scorer",
    "verify_erasure",
]
__version__ = "0.2.0.dev0"

from ._trusted import trusted_types  # noqa: E402
from .ledger import forget_ids  # noqa: E402

__all__ += ["forget_ids", "trusted_types"]

from .exceptions import StaleStateError  # noqa: E402
from .journal import Journal  # noqa: E402
from .persistence import ErasureStore  # noqa: E402

__all__ += ["ErasureStore", "Journal", "StaleStateError"]

from .reconcile import preview_forget, reconcile  # noqa: E402

__all__ += ["preview_forget", "reconcile"]
