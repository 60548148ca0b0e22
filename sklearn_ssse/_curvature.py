"""The stored inverse curvature: its interface, and the block-diagonal representation.

The stored object is the inverse of ``M = λ·P + C Σ_i w_i K_i`` (METHOD.md). Every
representation is a small immutable class implementing :class:`CurvatureInverse`
(apply, downdate, memory), so the engine never depends on how ``M⁻¹`` is held, as
skglm keeps datafits and penalties interchangeable. :class:`BlockDiagonalInverse`
holds one dense block per contiguous range of parameter coordinates. Representations
are model-agnostic: a model family supplies block matrices (at fit) and low-rank
factors or Gram blocks of the rows to forget (at deletion). Each declares what it
can do in class attributes (:attr:`CurvatureInverse.exact`, ``downdate_by``,
``keeps_rows``, ...) that the engine reads instead of testing types; the structures
are listed in :mod:`sklearn_ssse.curvature_registry` (docs/curvature.md).

This module imports none of the modules that extend it: the lazy representation
(``_curvature_lowrank``) registers itself with :func:`register_lazy_representation`.
"""

from abc import ABC, abstractmethod
from numbers import Integral

import numpy as np

from . import _array_api
from ._linalg import (
    gram_downdate,
    projected_downdate,
    spd_inverse,
    woodbury_downdate,
    woodbury_downdate_apply,
)

__all__ = [
    "BlockDiagonalInverse",
    "CurvatureInverse",
    "LAZY_MIN_BLOCK",
    "block_bounds",
    "max_rank",
    "register_lazy_representation",
]

# Blocks smaller than this are downdated eagerly: their copy costs less than the
# bookkeeping of the factors (``_curvature_lowrank``).
LAZY_MIN_BLOCK = 64


def max_rank(size, fraction):
    """The largest accumulated rank a block of ``size`` keeps before compacting."""
    if size < LAZY_MIN_BLOCK:
        return 0
    return max(1, int(size * fraction))


def block_bounds(n_params, block_size, group_bounds):
    """Split ``range(n_params)`` into the contiguous blocks of the curvature.

    Parameters
    ----------
    n_params : int
        Number of parameter coordinates.
    block_size : None, "class" or int
        ``None``: one block over everything. ``"class"``: the model's natural groups
        (one per class/output row of ``coef_``, or per layer), ``group_bounds``.
        int ``B``: consecutive blocks of at most ``B`` coordinates.
    group_bounds : list of (int, int)
        The model's natural groups, as ``(start, stop)`` ranges covering all
        coordinates in order.

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` of each block, in order, covering ``range(n_params)``.
    """
    if block_size is None:
        return [(0, n_params)]
    if isinstance(block_size, str):
        return [tuple(map(int, b)) for b in group_bounds]
    if isinstance(block_size, Integral) and block_size >= 1:
        starts = range(0, n_params, int(block_size))
        return [(s, min(s + int(block_size), n_params)) for s in starts]
    raise ValueError(
        f"block_size must be None, 'class' or a positive int; got {block_size!r}"
    )


class CurvatureInverse(ABC):
    """The interface of a stored inverse curvature ``M⁻¹``.

    Objects are immutable: :meth:`downdated` returns a new object and leaves
    ``self`` unchanged, so a published state can be read while a request builds
    the next one.

    Capabilities (class attributes, overridden by each representation; the
    engine asks them instead of testing the type):

    - ``structure``: the public ``curvature_structure`` name it implements
      (``"blocks"``, ``"cg"``, ``"cg-class"``, ``"cg-rows"``), ``None`` here.
    - ``exact``: whether it stores ``M`` itself (``False``: an approximation,
      such as several diagonal blocks of ``M`` or the class blocks alone).
    - ``downdate_by``: what :meth:`downdated` takes out of ``M``, ``"factors"``
      (low-rank factors or Gram blocks) or ``"rows"`` (the rows and their
      per-row weights, ``rows=(X̃_S, V_S)``).
    - ``keeps_rows``: whether the remaining training rows are stored (then the
      model contains them).
    - ``supports_l1``: whether it can be restricted to the movable coordinates
      of an L1 active set.
    - ``supports_estimates``: whether it can hold an estimated curvature (a
      mini-batch Fisher, downdated by projection).
    - ``curvatures``: the curvature kinds it stores (``"hessian"``, ``"fisher"``).
    - ``array_api``: whether it can live on an array API namespace's device.
    - ``lazy``: whether it may hold pending work that :meth:`folded` removes
      (factors of forgotten rows not yet folded in, a preconditioner that still
      sums forgotten rows).
    """

    structure = None
    exact = False
    downdate_by = "factors"
    keeps_rows = False
    supports_l1 = False
    supports_estimates = False
    curvatures = frozenset({"hessian", "fisher"})
    array_api = False
    lazy = False

    @property
    def downdates_rows(self):
        """Whether :meth:`downdated` takes rows (``downdate_by == "rows"``)."""
        return self.downdate_by == "rows"

    def folded(self):
        """The same ``M⁻¹`` without pending work (``self`` when there is none).

        What pickles, copies and ``compact_erasure_state`` hold: nothing that
        still sums rows forgotten since the fit (pending low-rank factors, a
        stale preconditioner).
        """
        return self

    @property
    @abstractmethod
    def n_params(self):
        """Number of parameter coordinates ``P``."""

    @property
    @abstractmethod
    def dtype(self):
        """dtype of the stored arrays (that of the training data)."""

    @property
    @abstractmethod
    def nbytes(self):
        """Memory held by the stored arrays, in bytes."""

    @property
    def bounds(self):
        """Contiguous ``(start, stop)`` ranges the downdate factors are split by.

        Factors and Gram blocks passed to :meth:`downdated` come one per range;
        the default is a single range over every coordinate.
        """
        return [(0, self.n_params)]

    @abstractmethod
    def apply(self, vector):
        """Return ``M⁻¹ @ vector`` for a vector of length ``n_params``."""

    @abstractmethod
    def downdated(self, factors=None, grams=None, prior=None):
        """``M⁻¹`` after removing some rows' contribution, as a new object.

        ``factors``: one ``(range size, r)`` array ``U_b`` per range of
        :attr:`bounds`, the rows' contribution being ``U_b U_bᵀ``; ``grams``: the
        contribution itself, one square matrix per range. ``prior``: see
        :meth:`BlockDiagonalInverse.downdated`.

        Raises
        ------
        numpy.linalg.LinAlgError
            If the downdated matrix is not positive definite.
        """

    def downdated_and_applied(self, factors, vector, span=None):
        """:meth:`downdated` by ``factors``, and both inverses applied to ``vector``.

        Returns ``(new, self.apply(vector), new.apply(vector))``. A representation
        may compute the three together for the cost of one pass over its arrays
        (:class:`BlockDiagonalInverse` does); this default does it plainly.
        ``span``: ``(B, s, a)`` with ``B`` of shape ``(k, n_params)``, each block's
        factor ``B[:, block].T diag(s)`` and ``vector = Bᵀ a`` (the caller checked
        it); a representation may use it to skip ``vector``'s own pass, or ignore
        it.
        """
        new = self.downdated(factors=factors)
        return new, self.apply(vector), new.apply(vector)

    def prefers_factors(self, rank):
        """Whether a downdate of this rank is cheaper through factors than grams."""
        return True

    def to_dense(self):
        """The whole inverse as a dense matrix (for tests and small models)."""
        return np.column_stack(
            [self.apply(e) for e in np.eye(self.n_params, dtype=self.dtype)]
        )

    @classmethod
    def estimate_nbytes(cls, n_params, dtype, **structure):
        """Memory the representation would hold for ``n_params`` coordinates.

        Computed before anything is built, so that ``fit`` can refuse a state that
        would not fit in memory before the solver runs.
        """
        raise NotImplementedError


class BlockDiagonalInverse(CurvatureInverse):
    """Inverse of a block-diagonal symmetric positive definite matrix.

    Parameters
    ----------
    bounds : list of (int, int)
        Contiguous coordinate range of each block.
    inverses : list of ndarray
        Inverse of each block, ``inverses[b]`` of shape ``(stop - start,) * 2``.

    Attributes
    ----------
    n_params : int
        Total number of coordinates.
    nbytes : int
        Memory held by the stored blocks.
    """

    structure = "blocks"
    supports_l1 = True
    supports_estimates = True
    array_api = True

    # Woodbury is cheaper than a dense re-solve while the rank stays below this
    # fraction of the block size (flop counts d²r + r³ against d³).
    woodbury_max_rank_fraction = 1.0
    # Downdates by factors publish a LowRankUpdatedInverse (``_curvature_lowrank``:
    # the blocks shared, Woodbury factors accumulated) instead of writing new
    # blocks, compacting a block once its accumulated rank passes this fraction of
    # its size: a lazy request then costs at most a quarter more than one read of
    # the block, the eager write at least half more (docs/latency.md).
    lazy_downdates = True
    max_rank_fraction = 0.125
    # The class of that lazy representation, set by its module on import
    # (:func:`register_lazy_representation`): this module never imports it.
    lazy_representation = None

    def __init__(self, bounds, inverses):
        self._bounds = [tuple(map(int, b)) for b in bounds]
        self.inverses = list(inverses)

    @property
    def bounds(self):
        return self._bounds

    @property
    def exact(self):
        """Whether ``M`` is stored whole: one block (``block_size=None``)."""
        return len(self.bounds) <= 1

    @classmethod
    def estimate_nbytes(cls, n_params, dtype, *, bounds=None):
        """Bytes held for blocks ``bounds`` (default: one dense block)."""
        if bounds is None:
            bounds = [(0, n_params)]
        itemsize = np.dtype(dtype).itemsize
        return int(sum((stop - start) ** 2 for start, stop in bounds) * itemsize)

    @classmethod
    def estimate_factor_nbytes(cls, bounds, dtype):
        """Bytes the accumulated low-rank factors can reach before compaction."""
        itemsize = np.dtype(dtype).itemsize
        return int(
            sum(
                (stop - start) * max_rank(stop - start, cls.max_rank_fraction)
                for start, stop in bounds
            )
            * itemsize
            * cls.lazy_downdates
        )

    def _lazy(self):
        """This inverse as a :class:`LowRankUpdatedInverse` of rank 0, or None."""
        lazy = self.lazy_representation
        if lazy is None or not self.lazy_downdates or self.is_diagonal:
            return None
        if _array_api.namespace(self.inverses[0])[0] is not None:
            return None  # other namespaces: the eager downdate, on their device
        return lazy(self.bounds, self.inverses, [None] * len(self.bounds))

    @classmethod
    def from_blocks(cls, bounds, matrices):
        """Factor and invert each block matrix (each must be positive definite).

        The matrices are consumed: their memory is reused for the inverses.
        """
        inverses = []
        while matrices:
            inverses.append(spd_inverse(matrices.pop(0), overwrite=True))
        return cls(bounds, inverses)

    @property
    def n_params(self):
        return self.bounds[-1][1] if self.bounds else 0

    @property
    def nbytes(self):
        return sum(_array_api.nbytes(inv) for inv in self.inverses)

    @property
    def dtype(self):
        return self.inverses[0].dtype

    @property
    def is_diagonal(self):
        """Whether every block is one coordinate (``block_size=1``)."""
        return all(stop - start == 1 for start, stop in self.bounds)

    def _diagonal(self):
        xp, _ = _array_api.namespace(self.inverses[0])
        if xp is not None:
            return xp.concat([xp.reshape(inverse, (-1,)) for inverse in self.inverses])
        return np.concatenate([inverse.ravel() for inverse in self.inverses])

    def apply(self, vector):
        """Return ``M⁻¹ @ vector`` for a vector of length ``n_params``."""
        xp, _ = _array_api.namespace(self.inverses[0])
        if xp is not None:  # on the state's device, in its namespace
            if self.is_diagonal:
                return self._diagonal() * vector
            return xp.concat(
                [
                    inverse @ vector[start:stop]
                    for (start, stop), inverse in zip(self.bounds, self.inverses)
                ]
            )
        vector = np.asarray(vector)
        if self.is_diagonal:
            return (self._diagonal() * vector).astype(self.dtype, copy=False)
        out = np.empty_like(vector, dtype=self.dtype)
        for (start, stop), inverse in zip(self.bounds, self.inverses):
            out[start:stop] = inverse @ vector[start:stop]
        return out

    def downdated(self, factors=None, grams=None, prior=None):
        """Inverse of ``M`` minus the contribution of some rows, as a new object.

        Give either ``factors``, one ``(block size, r)`` array ``U_b`` per block with
        the contribution ``U_b U_bᵀ`` (low rank: Woodbury, ``O(d_b² r + r³)``), or
        ``grams``, one ``(block size, block size)`` matrix per block (high rank: one
        dense solve per block). ``self`` is left unchanged. With ``prior`` (the
        damping diagonal over all coordinates) and ``grams``, the data term is
        instead projected onto the positive semi-definite cone after the removal
        (:func:`~sklearn_ssse._linalg.projected_downdate`): for curvatures that
        are estimates, such as mini-batch Fishers.

        Raises
        ------
        numpy.linalg.LinAlgError
            If a downdated block is not positive definite.
        """
        if (factors is None) == (grams is None):
            raise ValueError("give exactly one of factors or grams")
        xp, _ = _array_api.namespace(self.inverses[0])
        if self.is_diagonal and prior is None and xp is not None:
            if factors is not None:
                removed = xp.concat([xp.sum(U * U, axis=(0, 1))[None] for U in factors])
            else:
                removed = xp.concat([xp.reshape(W, (-1,)) for W in grams])
            remaining = 1.0 / self._diagonal() - removed
            if bool(xp.any(remaining <= 0)):
                raise np.linalg.LinAlgError(
                    "the downdated curvature is not positive definite"
                )
            inverses = xp.reshape(1.0 / remaining, (-1, 1, 1))
            return type(self)(
                self.bounds, [inverses[i, ...] for i in range(inverses.shape[0])]
            )
        if self.is_diagonal and prior is None:  # vectorised, not d tiny updates
            if factors is not None:
                removed = np.array([np.sum(U * U) for U in factors])
            else:
                removed = np.array([W[0, 0] for W in grams])
            remaining = 1.0 / self._diagonal() - removed
            if np.any(remaining <= 0):
                raise np.linalg.LinAlgError(
                    "the downdated curvature is not positive definite"
                )
            inverses = (1.0 / remaining).astype(self.dtype).reshape(-1, 1, 1)
            return type(self)(self.bounds, list(inverses))
        lazy = self._lazy() if factors is not None and prior is None else None
        if lazy is not None:
            return lazy.downdated(factors=factors)
        if prior is not None:
            new = [
                projected_downdate(inv, W, prior[start:stop])
                for inv, W, (start, stop) in zip(self.inverses, grams, self.bounds)
            ]
        elif factors is not None:
            new = [woodbury_downdate(inv, U) for inv, U in zip(self.inverses, factors)]
        else:
            new = [gram_downdate(inv, W) for inv, W in zip(self.inverses, grams)]
        return type(self)(self.bounds, new)

    def downdated_and_applied(self, factors, vector, span=None):
        """:meth:`downdated` by ``factors`` and both inverses applied to ``vector``.

        Each block is read once and its downdate written once
        (:func:`~sklearn_ssse._linalg.woodbury_downdate_apply`).
        """
        if self.is_diagonal:
            return super().downdated_and_applied(factors, vector)
        lazy = self._lazy()
        if lazy is not None:
            return lazy.downdated_and_applied(factors, vector, span=span)
        vector = np.asarray(vector)
        old = np.empty(vector.shape, dtype=self.dtype)
        new_applied = np.empty(vector.shape, dtype=self.dtype)
        inverses = []
        for inverse, U, (start, stop) in zip(self.inverses, factors, self.bounds):
            new, old[start:stop], new_applied[start:stop] = woodbury_downdate_apply(
                inverse, U, vector[start:stop]
            )
            inverses.append(new)
        return type(self)(self.bounds, inverses), old, new_applied

    def prefers_factors(self, rank):
        """Whether a downdate of this rank is cheaper through Woodbury factors."""
        if self.is_diagonal:
            return True  # vectorised, whatever the rank
        smallest = min(stop - start for start, stop in self.bounds)
        return rank <= self.woodbury_max_rank_fraction * smallest

    def to_dense(self):
        """The whole inverse as one dense matrix (for tests and small models)."""
        xp, device = _array_api.namespace(self.inverses[0])
        if xp is not None:
            out = xp.zeros(
                (self.n_params, self.n_params), dtype=self.dtype, device=device
            )
            for (start, stop), inverse in zip(self.bounds, self.inverses):
                out[start:stop, start:stop] = inverse
            return out
        out = np.zeros((self.n_params, self.n_params), dtype=self.dtype)
        for (start, stop), inverse in zip(self.bounds, self.inverses):
            out[start:stop, start:stop] = inverse
        return out


def register_lazy_representation(cls):
    """Make ``cls`` the representation that factor downdates of a
    :class:`BlockDiagonalInverse` publish (``cls(bounds, bases, factors)``,
    ``factors`` one ``None`` per block). Returns ``cls``.

    Called by ``_curvature_lowrank`` when it is imported (the package imports it
    with :mod:`sklearn_ssse.curvature_registry`), so that this module, which that
    one extends, never imports it.
    """
    BlockDiagonalInverse.lazy_representation = cls
    return cls
