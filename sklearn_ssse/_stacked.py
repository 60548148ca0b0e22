"""Stacked inverse curvatures of many outputs, downdated together by batched BLAS.

The multi-output wrapper over binary logistic outputs (the paper's CelebA setting:
40 attributes, one ``P × P`` inverse each) keeps every output's inverse in one
``(n_outputs, P, P)`` array, so that a request's linear algebra is a handful of
stacked calls (``np.matmul``, ``np.linalg.cholesky``, ``np.linalg.solve`` on
``(n_outputs, ·, ·)`` arrays) instead of a Python loop over outputs.

**Lazy low-rank factors.** Output ``o``'s inverse is
``M_o⁻¹ = base[o] + factors[o] factors[o]ᵀ``: a request of ``k`` rows appends its
``k`` Woodbury columns ``V = M⁻¹U L⁻ᵀ`` to ``factors`` and leaves ``base`` (shared
with the state before the request) untouched, so a one-row request reads the
stack once and writes nothing of its size. When the accumulated rank passes
:data:`FOLD_RANK` the factors are folded into a new ``base`` (one allocation, one
batched product). The factors hold the directions of the rows forgotten since the
last fold; a pickle or a deep copy of a sub-estimator always stores its inverse
folded (:meth:`StackedBlockInverse.__getstate__`).

Each sub-estimator's ``erasure_state_.curvature`` is a :class:`StackedBlockInverse`,
a one-block :class:`~sklearn_ssse._curvature.BlockDiagonalInverse` that reads its
slice of the shared stack: used alone (a request on ``estimators_[o]``, a prediction,
``to_dense``) it behaves as a plain one-block inverse.
"""

import numpy as np

from ._curvature import BlockDiagonalInverse, max_rank
from ._linalg import woodbury_step

__all__ = ["FOLD_RANK", "InverseStack", "StackedBlockInverse", "fold_rank"]

# Accumulated rank of the lazy factors above which they are folded into the base.
# ``None``: the single-output rule (``BlockDiagonalInverse.max_rank_fraction`` of
# the block size, eager below 64 coordinates or with ``lazy_downdates=False``;
# docs/latency.md), so that the memory budget's estimate of the factors holds.
# At P = 513 that is 64: one-row requests stay lazy for 64 requests, requests of
# more rows fold at once (as an eager downdate would, with one allocation).
FOLD_RANK = None


def fold_rank(size):
    """The accumulated rank above which a stack of ``size × size`` blocks folds."""
    if FOLD_RANK is not None:
        return FOLD_RANK
    if not BlockDiagonalInverse.lazy_downdates:
        return 0
    return max_rank(size, BlockDiagonalInverse.max_rank_fraction)


class InverseStack:
    """``n`` inverses of one size, ``M_o⁻¹ = base[o] + factors[o] factors[o]ᵀ``.

    Immutable: :meth:`downdated_and_applied` returns a new stack, sharing
    ``base`` with this one until a fold.

    Parameters
    ----------
    base : ndarray of shape (n, P, P)
        Symmetric matrices (C-ordered), never written to.
    factors : ndarray of shape (n, P, r) or None
        The low-rank part (``None``: rank 0).
    """

    def __init__(self, base, factors=None):
        self.base = base
        self.factors = factors

    @classmethod
    def from_inverses(cls, inverses):
        """A stack of dense inverses (copied into one array)."""
        return cls(np.stack([np.asarray(inv) for inv in inverses]))

    @property
    def n_outputs(self):
        return self.base.shape[0]

    @property
    def rank(self):
        """Number of columns of the lazy factors."""
        return 0 if self.factors is None else self.factors.shape[2]

    def dense(self, index):
        """``M⁻¹`` of one output as a dense matrix (the base slice when no factors)."""
        if self.factors is None:
            return self.base[index]
        F = self.factors[index]
        out = F @ F.T
        out += self.base[index]
        return out

    def apply(self, index, vector):
        """``M⁻¹ @ vector`` for one output, without forming ``M⁻¹``."""
        out = self.base[index] @ vector
        if self.factors is not None:
            F = self.factors[index]
            out = out + F @ (F.T @ vector)
        return out

    def folded(self):
        """The same inverses with the factors folded into a new base (rank 0)."""
        if self.factors is None:
            return self
        F = self.factors
        base = np.matmul(F, F.transpose(0, 2, 1))
        base += self.base
        return InverseStack(base)

    def slices(self):
        """One :class:`StackedBlockInverse` per output."""
        return [StackedBlockInverse(self, index) for index in range(self.n_outputs)]

    def downdated_and_applied(self, U, G, limit=None, span=None):
        """Every output's Woodbury downdate and both inverses applied to its vector.

        Parameters
        ----------
        U : ndarray of shape (n, P, k)
            Output ``o``'s rows to remove, ``M_o − U_o U_oᵀ``.
        G : ndarray of shape (n, P)
            One vector per output.
        limit : int, default=None
            Fold the factors into a new base above this rank (default:
            :func:`fold_rank`).
        span : (ndarray of shape (P, k), ndarray of shape (n, k), ndarray of
            shape (n, k)) or None
            ``(B, S, A)`` with ``U_o = B diag(S_o)`` and ``G_o = B A_o`` (the
            outputs share their rows ``B``): the one pass over the base takes
            ``B``'s ``k`` columns instead of ``k + 1`` per output.

        Returns
        -------
        stack : InverseStack
            The downdated inverses.
        old_applied, new_applied : ndarray of shape (n, P)
            ``M_o⁻¹ G_o`` and ``(M_o − U_o U_oᵀ)⁻¹ G_o``.

        Raises
        ------
        numpy.linalg.LinAlgError
            If some ``M_o − U_o U_oᵀ`` is not positive definite.
        """
        dtype = self.base.dtype
        n, P, k = U.shape
        if limit is None:
            limit = fold_rank(P)
        # One pass over the base for M⁻¹U and M⁻¹g together (M⁻¹B alone when
        # the vectors lie in the span of the shared rows B).
        if span is not None:
            block = np.asarray(span[0], dtype=dtype)
        else:
            block = np.empty((n, P, k + 1), dtype=dtype)
            block[:, :, :k] = U
            block[:, :, k] = G
        product = np.matmul(self.base, block)
        if self.factors is not None:
            F = self.factors
            product += np.matmul(F, np.matmul(F.transpose(0, 2, 1), block))
        V, old_applied, new_applied = woodbury_step(product, U, G, span)
        V = np.ascontiguousarray(V, dtype=dtype)
        factors = V if self.factors is None else np.concatenate([self.factors, V], 2)
        stack = InverseStack(self.base, factors)
        if factors.shape[2] > limit:
            stack = stack.folded()
        return stack, old_applied, new_applied


class StackedBlockInverse(BlockDiagonalInverse):
    """One output's inverse curvature, a slice of an :class:`InverseStack`.

    A one-block :class:`~sklearn_ssse._curvature.BlockDiagonalInverse`:
    :attr:`inverses` is ``[M⁻¹]`` (formed on demand when the stack has lazy
    factors), and a request made on this output alone downdates it into a plain
    :class:`~sklearn_ssse._curvature.BlockDiagonalInverse`. Pickles and copies hold
    this output's inverse alone, folded; the multi-output wrapper stacks the
    outputs again at its next request.

    Parameters
    ----------
    stack : InverseStack
        The shared stack.
    index : int
        This output's place in it.
    """

    lazy = True  # the shared stack's pending factors, folded by :meth:`folded`
    array_api = False

    def __init__(self, stack, index):
        self.stack = stack
        self.index = int(index)
        size = stack.base.shape[1]
        self._bounds = [(0, size)]

    @property
    def inverses(self):
        return [self.stack.dense(self.index)]

    @property
    def dtype(self):
        return self.stack.base.dtype

    @property
    def nbytes(self):
        size = self.stack.base[self.index].nbytes
        if self.stack.factors is not None:
            size += self.stack.factors[self.index].nbytes
        return size

    def apply(self, vector):
        vector = np.asarray(vector)
        return self.stack.apply(self.index, vector).astype(self.dtype, copy=False)

    def _plain(self):
        return BlockDiagonalInverse(self.bounds, self.inverses)

    def folded(self):
        """This output's inverse as a plain one-block inverse when the stack has
        pending factors (``self`` otherwise)."""
        return self._plain() if self.stack.rank else self

    def downdated(self, factors=None, grams=None, prior=None):
        return self._plain().downdated(factors=factors, grams=grams, prior=prior)

    def downdated_and_applied(self, factors, vector, span=None):
        return self._plain().downdated_and_applied(factors, vector, span=span)

    # -- persistence: this output's inverse alone, folded ----------------------------
    def __getstate__(self):
        inverse = np.array(self.stack.dense(self.index))
        return {"bounds": self.bounds, "inverse": inverse}

    def __setstate__(self, state):
        inverse = np.asarray(state["inverse"])
        self.stack = InverseStack(inverse[None])
        self.index = 0
        self._bounds = [tuple(map(int, b)) for b in state["bounds"]]
