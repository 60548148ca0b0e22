"""A stored inverse published without writing it: a shared base plus low-rank factors.

A request of ``k`` rows takes ``U Uᵀ`` out of each curvature block. Writing the
downdated ``d × d`` inverse costs as much memory traffic as reading it twice, and the
published state is immutable, so it cannot be updated in place. Woodbury's identity
gives the downdated inverse as the old one plus a symmetric low-rank term; this
representation keeps exactly that::

    M_rem⁻¹ = A + V Vᵀ        (per block)

with ``A`` an immutable dense inverse shared by every state since the last
compaction and ``V`` (``d × r``) the accumulated Woodbury factors. A downdate by
``U`` reads ``A`` once::

    W = M⁻¹U = A U + V (Vᵀ U)       (one GEMM A·[U, g], fused with the step)
    I − Uᵀ W = L Lᵀ                 (Cholesky: LinAlgError unless positive definite)
    V' = [V, W L⁻ᵀ]                 (the new state shares A)

and ``M⁻¹v = A v + V (Vᵀ v)``. When the accumulated rank would pass
:attr:`LowRankUpdatedInverse.max_rank_fraction` of the block size, the block is
compacted: ``A + V Vᵀ`` is written once (a SYRK or in-place BLAS update) as a new
base. Flop and traffic counts (``docs/latency.md``): a lazy request of rank ``k``
costs ``2 d² k`` flops and one read of ``A``, plus ``4 d r k`` flops and two reads of
``V`` (at most a quarter of the former at ``r ≤ d/8``); the eager one adds a write
of ``d²`` words and ``d² k`` flops (SYRK). A compaction costs what one eager update
of the accumulated rank costs, once per ``d/8`` rank.

Successive states share ``A`` and the columns of ``V``: the factors live in a
buffer of ``d × r_max`` columns that a state extends in place when it is the
buffer's newest state (columns past a state's rank are never read by it, so older
states and readers are unaffected); any other state copies its columns first.

Privacy: until a block is compacted, its base ``A`` is the inverse from before
the requests folded into ``V``. A pickle (or a copy) compacts first, so nothing
persisted keeps it; :meth:`LowRankUpdatedInverse.compacted` does so on demand.
"""

import threading

import numpy as np

from ._curvature import (
    LAZY_MIN_BLOCK,  # noqa: F401  (defined there, still importable from here)
    BlockDiagonalInverse,
    max_rank,
    register_lazy_representation,
)
from ._linalg import (
    _multiply,
    symmetric_rank_update,
    woodbury_downdate_apply,
    woodbury_step,
)

__all__ = ["LowRankUpdatedInverse", "lazy_downdate_and_apply"]


class _FactorBuffer:
    """Columns of ``V`` for one block, shared by successive states.

    A state of rank ``r`` reads ``array[:, :r]`` only. :meth:`extended` appends
    columns in place when ``r`` is the buffer's current length (the state is the
    newest), otherwise copies the state's columns into a new buffer.
    """

    __slots__ = ("array", "used", "lock")

    def __init__(self, n_rows, capacity, dtype):
        self.array = np.empty((n_rows, capacity), dtype=dtype, order="F")
        self.used = 0
        self.lock = threading.Lock()

    def extended(self, rank, columns):
        """``(buffer, rank + k)`` holding this state's columns and ``columns``."""
        k = columns.shape[1]
        with self.lock:
            if self.used == rank and rank + k <= self.array.shape[1]:
                self.array[:, rank : rank + k] = columns
                self.used = rank + k
                return self, rank + k
        new = _FactorBuffer(*self.array.shape, self.array.dtype)
        new.array[:, :rank] = self.array[:, :rank]
        new.array[:, rank : rank + k] = columns
        new.used = rank + k
        return new, rank + k


def lazy_downdate_and_apply(base, factor, U, vector, fraction, span=None):
    """One block's downdate by ``U`` (and the old and new inverse applied).

    Parameters
    ----------
    base : ndarray of shape (d, d)
        The block's shared base ``A`` (not modified).
    factor : (_FactorBuffer, int) or None
        The block's accumulated factors ``V`` and their rank.
    U : ndarray of shape (d, k)
    vector : ndarray of shape (d,) or None
    fraction : float
        Compaction threshold (:attr:`LowRankUpdatedInverse.max_rank_fraction`).
    span : (ndarray of shape (d, k), ndarray of shape (k,), ndarray of shape (k,))
        or None
        ``(B, s, a)`` with ``U = B diag(s)`` and ``vector = B a``: the vector lies
        in the span of the rows (a binary request's gradient does), so the one
        pass over ``A`` takes ``k`` columns instead of ``k + 1``. ``None``:
        ``[U, vector]``.

    Returns
    -------
    base, factor : the new block (``factor`` ``None`` once compacted)
    old_applied, new_applied : ndarray of shape (d,) or None

    Raises
    ------
    numpy.linalg.LinAlgError
        If the downdated block is not positive definite; nothing is modified.
    """
    dtype = base.dtype
    d = base.shape[0]
    U = np.asarray(U, dtype=dtype)
    k = U.shape[1]
    rank = 0 if factor is None else factor[1]
    limit = max_rank(d, fraction)
    if rank == 0 and k > limit:  # nothing accumulated, too large a request
        new, old_applied, new_applied = woodbury_downdate_apply(base, U, vector)
        return new, None, old_applied, new_applied
    if span is not None and vector is not None:
        block = np.asarray(span[0], dtype=dtype, order="F")
    elif vector is None:
        block = U
    else:
        block = np.empty((d, k + 1), dtype, order="F")
        block[:, :k] = U
        block[:, k] = vector
    product = _multiply(base, block)  # the one read of A
    if rank:
        V = factor[0].array[:, :rank]
        product += V @ (V.T @ block)
    if span is not None and vector is not None:
        span = (None, span[1], span[2])
    else:
        span = None
    W, old_applied, new_applied = woodbury_step(product, U, vector, span)
    if rank + k > limit:  # compact: write A + V Vᵀ + W Wᵀ once, a new base
        everything = W if not rank else np.hstack([factor[0].array[:, :rank], W])
        return symmetric_rank_update(base, everything), None, old_applied, new_applied
    if factor is None:
        factor = (_FactorBuffer(d, limit, dtype), 0)
    return base, factor[0].extended(rank, W), old_applied, new_applied


@register_lazy_representation
class LowRankUpdatedInverse(BlockDiagonalInverse):
    """Block-diagonal ``M⁻¹`` held as shared dense bases plus low-rank factors.

    Made by :meth:`BlockDiagonalInverse.downdated
    <sklearn_ssse._curvature.BlockDiagonalInverse.downdated>` (not by hand). Its
    :attr:`inverses` (the compacted blocks) are materialised on first access only;
    requests never need them.

    Parameters
    ----------
    bounds : list of (int, int)
        Contiguous coordinate range of each block.
    bases : list of ndarray
        Each block's shared base ``A_b``, never written to.
    factors : list of (_FactorBuffer, int) or None
        Each block's accumulated factors and rank (``None``: rank 0).
    """

    # Compaction threshold (BlockDiagonalInverse.max_rank_fraction, shared).
    lazy = True  # pending factors, folded by :meth:`folded`
    array_api = False

    def __init__(self, bounds, bases, factors):
        self._bounds = [tuple(map(int, b)) for b in bounds]
        self.bases = list(bases)
        self.factors = list(factors)
        self._dense = None

    # -- what a BlockDiagonalInverse exposes ------------------------------------
    @property
    def inverses(self):
        """Each block's dense inverse ``A_b + V_b V_bᵀ`` (materialised once)."""
        dense = self._dense
        if dense is None:
            dense = [
                base if f is None else symmetric_rank_update(base, _columns(f))
                for base, f in zip(self.bases, self.factors)
            ]
            self._dense = dense
        return dense

    @property
    def rank(self):
        """Accumulated rank of each block's factors."""
        return [0 if f is None else f[1] for f in self.factors]

    @property
    def nbytes(self):
        held = sum(base.nbytes for base in self.bases)
        held += sum(
            f[0].array.itemsize * f[0].array.shape[0] * f[1]
            for f in self.factors
            if f is not None
        )
        if self._dense is not None:
            held += sum(
                a.nbytes for a, f in zip(self._dense, self.factors) if f is not None
            )
        return held

    @property
    def dtype(self):
        return self.bases[0].dtype

    @property
    def is_diagonal(self):
        return False

    def apply(self, vector):
        vector = np.asarray(vector)
        out = np.empty_like(vector, dtype=self.dtype)
        for (start, stop), base, f in zip(self.bounds, self.bases, self.factors):
            part = vector[start:stop]
            out[start:stop] = base @ part
            if f is not None:
                V = _columns(f)
                out[start:stop] += V @ (V.T @ part)
        return out

    def compacted(self):
        """The same inverse as a plain ``BlockDiagonalInverse`` (dense blocks)."""
        return BlockDiagonalInverse(self.bounds, self.inverses)

    def folded(self):
        """:meth:`compacted` when factors are pending, else ``self``."""
        return self.compacted() if any(self.rank) else self

    def to_dense(self):
        return self.compacted().to_dense()

    def downdated(self, factors=None, grams=None, prior=None):
        if (factors is None) == (grams is None):
            raise ValueError("give exactly one of factors or grams")
        if grams is not None:  # high rank: compact, then a dense re-solve
            return self.compacted().downdated(grams=grams, prior=prior)
        return self._downdated(factors, None)[0]

    def downdated_and_applied(self, factors, vector, span=None):
        new, old, new_applied = self._downdated(factors, np.asarray(vector), span)
        return new, old, new_applied

    def _downdated(self, factors, vector, span=None):
        fraction = self.max_rank_fraction
        if vector is not None:
            old = np.empty(vector.shape, dtype=self.dtype)
            new_applied = np.empty(vector.shape, dtype=self.dtype)
        else:
            old = new_applied = None
        bases, kept = [], []
        for (start, stop), base, f, U in zip(
            self.bounds, self.bases, self.factors, factors
        ):
            part = None if vector is None else vector[start:stop]
            local = None
            if span is not None:
                local = (span[0][:, start:stop].T, span[1], span[2])
            base, f, o, n = lazy_downdate_and_apply(
                base, f, U, part, fraction, span=local
            )
            bases.append(base)
            kept.append(f)
            if vector is not None:
                old[start:stop], new_applied[start:stop] = o, n
        if all(f is None for f in kept):
            new = BlockDiagonalInverse(self.bounds, bases)
        else:
            new = LowRankUpdatedInverse(self.bounds, bases, kept)
        return new, old, new_applied

    # -- persistence: the compacted form only ---------------------------------
    def __reduce__(self):
        return (BlockDiagonalInverse, (self.bounds, self.inverses))

    def __getstate__(self):
        # For serialisers that walk ``__dict__`` (skops): the compacted blocks as
        # the bases, no factors.
        return {
            "_bounds": self.bounds,
            "bases": self.inverses,
            "factors": [None] * len(self.bounds),
            "_dense": None,
        }


def _columns(factor):
    buffer, rank = factor
    return buffer.array[:, :rank]
