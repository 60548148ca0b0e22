"""sklearn-ssse: erase training rows from fitted scikit-learn classifiers.

SSSE (single-step sample erasure) updates a fitted model in one closed-form
Newton-type step, preconditioned by the inverse empirical Fisher (or the Hessian),
using only the rows to forget.
"""

from ._curvature import BlockDiagonalInverse
from .base import ErasableMixin
from .linear_model import ErasableLogisticRegression
from .model_selection import ForgetStep, forget_scale_curve, make_erasure_scorer
from .multioutput import ErasableMultiOutputClassifier
from .neural_network import ErasableMLPClassifier

__all__ = [
    "BlockDiagonalInverse",
    "ErasableLogisticRegression",
    "ErasableMLPClassifier",
    "ErasableMixin",
    "ErasableMultiOutputClassifier",
    "ForgetStep",
    "forget_scale_curve",
    "make_erasure_scorer",
]
__version__ = "0.1.0"
