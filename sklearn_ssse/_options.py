"""The erasure options of an estimator, resolved and checked once, before ``fit``.

The public string parameters (``curvature``, ``curvature_structure``,
``fisher_batch_size``, ``removal_noise``, ...) stay the drop-in surface;
:func:`resolve_erasure_options` turns them into one frozen
:class:`ErasureOptions` and refuses every incompatible combination before the
solver runs (as scikit-learn's ``_check_solver`` does for ``LogisticRegression``),
so that no combination is refused, or silently changed, after the fit.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["ErasureOptions", "resolve_erasure_options"]

# The structures that store the exact curvature and are solved by CG: they need
# the exact (per-row) curvature of a smooth objective.
EXACT_ROW_STRUCTURES = ("cg", "cg-class", "cg-rows")


@dataclass(frozen=True)
class ErasureOptions:
    """What ``fit`` will build, from the estimator's parameters.

    Attributes
    ----------
    curvature : str
        ``"hessian"`` or ``"fisher"``.
    structure : str
        The requested ``curvature_structure`` (``"auto"`` is decided by ``fit``
        from the data's shape and the memory budget).
    fisher_batch_size : int
        Rows per mini-batch of an estimated Fisher (1: exact).
    l1_share : float
        The L1 share of the penalty (0 for a smooth objective).
    certified_removal : bool
        Whether ``removal_noise`` is set.
    """

    curvature: str
    structure: str
    fisher_batch_size: int
    l1_share: float
    certified_removal: bool


def resolve_erasure_options(estimator, X=None):
    """Resolve and check the erasure parameters of ``estimator``.

    Parameters
    ----------
    estimator : ErasableLogisticRegression or ErasableLogisticRegressionCV
        Its parameters are read once.
    X : array-like or None
        The training data (its namespace decides what the array API path can
        build), when known.

    Returns
    -------
    ErasureOptions

    Raises
    ------
    ValueError
        For every combination ``fit`` could not honour, with the fix.
    """
    curvature = getattr(estimator, "curvature", "fisher")
    structure = getattr(estimator, "curvature_structure", "blocks")
    batch = int(getattr(estimator, "fisher_batch_size", 1))
    l1_share = _l1_share(estimator)
    noise = getattr(estimator, "removal_noise", None)
    if batch > 1 and curvature != "fisher":
        raise ValueError(
            f"fisher_batch_size={batch} estimates the empirical Fisher from "
            f"mini-batches; it needs curvature='fisher', not {curvature!r} (use "
            "fisher_batch_size=1 with the Hessian)"
        )
    if batch > 1 and structure in EXACT_ROW_STRUCTURES:
        raise ValueError(
            f"curvature_structure={structure!r} stores the exact curvature; "
            "fisher_batch_size > 1 needs curvature_structure='blocks' (or 'auto')"
        )
    if l1_share > 0 and structure in EXACT_ROW_STRUCTURES:
        raise ValueError(
            f"curvature_structure={structure!r} solves with the curvature of every "
            "coordinate, but an L1 or elastic-net penalty (l1_ratio > 0) freezes "
            "the coordinates at zero and stores the curvature of the others only: "
            "use curvature_structure='blocks' (or 'auto')"
        )
    if noise is not None:
        if l1_share > 0 or getattr(estimator, "C", 1.0) == np.inf:
            penalty = "no penalty (C=np.inf)" if l1_share == 0 else "an L1 share"
            raise ValueError(
                f"removal_noise={noise!r} (certified removal) needs a pure L2 "
                f"penalty, not {penalty}: the guarantee rests on a strictly convex, "
                "smooth objective. Use a finite C with l1_ratio=0, or "
                "removal_noise=None"
            )
    if X is not None and _is_array_api(X):
        if structure in EXACT_ROW_STRUCTURES:
            raise ValueError(
                f"curvature_structure={structure!r} is implemented for NumPy and "
                "SciPy inputs; array API inputs build dense blocks: use "
                "curvature_structure='blocks' (or 'auto')"
            )
        if noise is not None:
            raise ValueError(
                "removal_noise (certified removal) is implemented for NumPy and "
                "SciPy inputs only; convert X to a NumPy array"
            )
    return ErasureOptions(
        curvature=curvature,
        structure=structure,
        fisher_batch_size=batch,
        l1_share=l1_share,
        certified_removal=noise is not None,
    )


def _l1_share(estimator):
    resolve = getattr(estimator, "_penalty_and_l1_ratio", None)
    if resolve is not None:
        try:
            return float(resolve()[1])
        except (TypeError, ValueError):  # invalid: scikit-learn's fit says why
            return 0.0
    ratios = getattr(estimator, "l1_ratios", None)  # the CV estimator's grid
    if ratios is None or isinstance(ratios, str):
        return 0.0
    return float(np.max(np.asarray(ratios, dtype=float), initial=0.0))


def _is_array_api(X):
    from sklearn.externals import array_api_compat

    from ._array_api import is_numpy

    return array_api_compat.is_array_api_obj(X) and not is_numpy(X)
