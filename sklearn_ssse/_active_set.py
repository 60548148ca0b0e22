"""A model family's maths restricted to the coordinates an update may move.

For a non-smooth penalty (L1, elastic-net) the objective has no curvature where a
penalised coordinate is zero. The standard treatment (as in approximate leave-one-out
for L1-regularised models) freezes those coordinates and takes the Newton step on the
*active set* ``A`` of the others: the stored curvature is ``M_AA``, the gradient is
restricted to ``A``, and the step leaves every other coordinate where it is (at zero).

:class:`ActiveSetMaths` wraps any :class:`~sklearn_ssse._maths.ModelMaths`: it takes
the *full* parameter vector (the frozen coordinates still enter the model's outputs)
and returns gradients and curvature over ``A`` only, so that the curvature is built
on ``|A|`` coordinates, never on all of them.
"""

import numpy as np
from sklearn.utils import check_random_state

from ._linalg import accumulate_gram, symmetrize_from_lower
from ._maths import ModelMaths, _batch_sums, row_chunks

__all__ = ["ActiveSetMaths"]


class ActiveSetMaths(ModelMaths):
    """The maths of ``maths`` on the coordinates ``index`` only.

    Parameters
    ----------
    maths : ModelMaths
        The model family's maths over all coordinates.
    index : ndarray of int
        Sorted indices of the coordinates kept (the active set).
    """

    def __init__(self, maths, index):
        self.maths = maths
        self.index = np.asarray(index, dtype=np.intp)
        self.n_params = len(self.index)
        self.kinds = maths.kinds

    def group_bounds(self):
        """The full model's groups, each restricted to the kept coordinates."""
        edges = np.searchsorted(self.index, [s for s, _ in self.maths.group_bounds()])
        edges = [*edges.tolist(), self.n_params]
        return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    def null_directions(self):
        """The full model's flat directions that lie wholly on kept coordinates."""
        null = self.maths.null_directions()
        frozen = np.ones(null.shape[0], dtype=bool)
        frozen[self.index] = False
        inside = ~np.any(null[frozen] != 0, axis=0)
        return null[self.index][:, inside]

    def gradient_rows(self, X, y, theta, active):
        return self.maths.gradient_rows(X, y, theta, active)[:, self.index]

    def factor_rank(self, kind):
        return self.maths.factor_rank(kind)

    def factor_rows(self, X, y, theta, active, kind):
        return self.maths.factor_rows(X, y, theta, active, kind)[:, :, self.index]

    def gradient_sums(self, X, y, weights, theta, active, n_classes):
        sums = self.maths.gradient_sums(X, y, weights, theta, active, n_classes)
        return sums[:, self.index]

    def curvature_blocks(
        self,
        X,
        y,
        weights,
        theta,
        active,
        kind,
        bounds,
        batch_size=1,
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        """``Σ_i w_i K_i`` on the kept coordinates, from factor rows over row chunks.

        (``n_jobs`` and ``verbose`` are accepted for the interface; this build runs
        in one process, without progress lines.)

        Each chunk forms the full model's factor rows (``K_i = Σ_q u_iq u_iqᵀ``),
        keeps the active columns and adds their Gram matrix: one SYRK per block on
        ``|A|`` columns. With ``batch_size > 1`` (mini-batch Fisher) the rows are
        shuffled and summed by batches exactly as
        :meth:`ModelMaths.curvature_blocks` does; chunks are sized by the full
        model's rows, which each chunk forms before keeping ``A``.
        """
        blocks = [np.zeros((e - s, e - s), dtype=theta.dtype) for s, e in bounds]
        if self.n_params == 0:  # nothing can move: an empty curvature
            return blocks
        n = X.shape[0]
        order = np.arange(n)
        if batch_size > 1:
            if kind != "fisher":
                raise ValueError("fisher_batch_size > 1 applies to the Fisher only")
            order = check_random_state(random_state).permutation(n)
        rank = self.maths.factor_rank(kind)
        row_bytes = X.dtype.itemsize * rank * (self.maths.n_params + 2 * self.n_params)
        for chunk in row_chunks(n, row_bytes, multiple=batch_size):
            rows = order[chunk]
            U = self.factor_rows(X[rows], y[rows], theta, active, kind)
            U *= np.sqrt(weights[rows])[:, None, None]
            U = U.reshape(-1, self.n_params)
            if batch_size > 1:
                U = _batch_sums(U, batch_size)
            U = np.ascontiguousarray(U, dtype=theta.dtype)
            for block, (s, e) in zip(blocks, bounds):
                accumulate_gram(block, U[:, s:e], U[:, s:e], same=True)
        return [symmetrize_from_lower(block) for block in blocks]
