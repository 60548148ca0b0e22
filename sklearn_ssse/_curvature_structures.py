"""Which representation stores a linear model's curvature, and building it.

``curvature_structure`` (an estimator parameter) names one:

- ``"blocks"``: :class:`~sklearn_ssse._curvature.BlockDiagonalInverse`, the dense
  inverse of each block (``block_size``); memory ``Σ_b d_b²``.
- ``"cg"``: :class:`~sklearn_ssse._curvature_cg.ConjugateGradientCurvature`, the
  exact ``M`` (not its inverse) in blocks over pairs of outputs, sparse for sparse
  data; ``M⁻¹`` by preconditioned CG. Same step as ``block_size=None`` up to CG's
  tolerance.
- ``"cg-class"``: the same with the curvature between different outputs (classes)
  dropped: ``n_outputs`` blocks instead of ``n_outputs (n_outputs + 1) / 2``.
- ``"auto"``: ``"blocks"`` when it fits the memory budget, otherwise ``"cg"`` if
  that fits, otherwise ``"cg-class"``.
"""

import numpy as np
import scipy.sparse as sp

from ._curvature_cg import ConjugateGradientCurvature, augment_rows
from ._maths import row_chunks
from ._memory import resolve_budget

__all__ = ["STRUCTURES", "select_structure", "build_cg_curvature"]

STRUCTURES = ("auto", "blocks", "cg", "cg-class")


def _pattern_bound(X, fit_intercept):
    """Upper bound of ``nnz(triu(X̃ᵀX̃))`` without forming it: ``Σ_i q_i (q_i+1)/2``."""
    if not sp.issparse(X):
        return None
    q = np.diff(sp.csr_matrix(X).indptr).astype(np.int64) + int(fit_intercept)
    return int(np.sum(q * (q + 1) // 2))


def cg_nbytes(maths, X, couple_outputs=True):
    """Estimated bytes of the ``"cg"`` (or ``"cg-class"``) structure for ``X``."""
    return ConjugateGradientCurvature.estimate_nbytes(
        maths.n_params,
        X.dtype,
        n_outputs=maths.n_outputs,
        pattern_nnz=_pattern_bound(X, maths.fit_intercept),
        couple_outputs=couple_outputs,
    )


def select_structure(structure, maths, X, bounds, memory_budget="auto"):
    """The structure to build: ``structure`` itself unless it is ``"auto"``.

    ``bounds`` are the blocks ``"blocks"`` would store (from ``block_size``).
    """
    if structure != "auto":
        return structure
    budget = resolve_budget(memory_budget)
    blocks = sum((e - s) ** 2 for s, e in bounds) * X.dtype.itemsize
    if budget is None or blocks <= budget:
        return "blocks"
    if cg_nbytes(maths, X, couple_outputs=True) <= budget:
        return "cg"
    return "cg-class"


def build_cg_curvature(
    maths, X, y, weights, theta, active, kind, C, damping, damped, structure
):
    """Build the ``"cg"`` / ``"cg-class"`` curvature at ``theta``.

    Returns the :class:`ConjugateGradientCurvature`, the damping diagonal and the
    data term's diagonal, as
    ``ErasableMixin._fit_erasure_state`` does for blocks (floor
    ``√eps × mean diag`` of the data term, flat directions at that scale).
    """
    if not hasattr(maths, "kronecker_weights"):
        raise ValueError(
            f"curvature_structure={structure!r} needs a linear model; "
            "use curvature_structure='blocks'"
        )

    def augment(rows):
        return augment_rows(rows, maths.fit_intercept, maths.intercept_scaling)

    scale_rows = (C * weights).astype(X.dtype)

    def row_weights(rows):
        V = maths.kronecker_weights(X[rows], y[rows], theta, active, kind)
        return (V * scale_rows[rows, None, None]).astype(X.dtype, copy=False)

    def prior_fn(diagonal):
        scale = diagonal.mean() if diagonal.size and diagonal.mean() > 0 else 1.0
        floor = np.sqrt(np.finfo(X.dtype).eps) * scale
        return damping * damped + floor, scale

    null = maths.null_directions()
    null = null[:, np.isclose(np.linalg.norm(null, axis=0), 1.0)]
    row_chunk = None
    if not sp.issparse(X):
        row_chunk = next(
            iter(row_chunks(X.shape[0], 3 * X.dtype.itemsize * maths.width))
        )
        row_chunk = row_chunk.stop - row_chunk.start
    inverse = ConjugateGradientCurvature.from_rows(
        X,
        row_weights,
        prior_fn,
        null,
        couple_outputs=structure == "cg",
        row_chunk=row_chunk,
        augment=augment,
    )
    data_diagonal = inverse.diagonal() - inverse.prior - np.sum(inverse.null**2, 1)
    return inverse, inverse.prior, data_diagonal.astype(np.float64)


def downdate_rows(maths, X, y, point, active, kind, fit_weights):
    """``(X̃_S, V_S)`` of a request's rows, for ``downdated(rows=...)``."""
    V = maths.kronecker_weights(X, y, point, active, kind)
    V = V * fit_weights[:, None, None]
    return augment_rows(X, maths.fit_intercept, maths.intercept_scaling), V
