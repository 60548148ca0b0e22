"""What every model family's maths must provide, and the parts they share.

A *model family* knows, at fixed parameters ``theta`` (a flat vector), the per-sample
gradients of the data loss and its curvature. The estimators and the update engine
(:mod:`sklearn_ssse.base`) only talk to this interface, so adding a model family means
adding one small subclass of :class:`ModelMaths`.

Conventions: the data term of the objective is ``C · Σ_i w_i ℓ_i(θ)``; ``K_i`` is the
per-sample curvature (the outer product ``g_i g_iᵀ`` for the empirical Fisher, the
Hessian ``∇²ℓ_i`` for ``kind="hessian"``). Functions here return the *unscaled*
``Σ_i w_i K_i``; the engine multiplies by ``C`` and adds the damping.
"""

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.utils import check_random_state

from ._linalg import accumulate_gram, symmetrize_from_lower

__all__ = ["ModelMaths", "row_chunks"]

# Level-3 products reach full speed long before this; a larger chunk would only
# raise fit's peak memory (scikit-learn's working_memory caps it further).
MAX_CHUNK_BYTES = 4 * 2**20


def row_chunks(n_rows, row_bytes, multiple=1):
    """Slices of ``range(n_rows)`` whose temporaries fit in a bounded working memory.

    Parameters
    ----------
    n_rows : int
        Number of rows to cover.
    row_bytes : int
        Bytes of temporary memory one row needs.
    multiple : int, default=1
        Every chunk but the last has a length that is a multiple of this.

    Returns
    -------
    generator of slice
    """
    budget = min(get_config()["working_memory"] * 2**20, MAX_CHUNK_BYTES)
    size = max(int(budget // max(row_bytes, 1)), 1)
    size = max(size - size % multiple, multiple)
    # gen_batches without its parameter validation (this runs on every request).
    return (slice(start, min(start + size, n_rows)) for start in range(0, n_rows, size))


class ModelMaths(ABC):
    """Per-sample gradients and curvature of one model family at fixed parameters.

    Subclasses set ``n_params`` and implement :meth:`gradient_rows`; the others have
    generic implementations built on it, which a family may replace by faster ones.
    ``active`` is a boolean mask over classes: inactive classes (all of whose
    training rows were forgotten) get probability zero.
    """

    n_params: int

    kinds = ("fisher",)

    @abstractmethod
    def group_bounds(self):
        """Natural ``(start, stop)`` groups of coordinates (``block_size="class"``)."""

    @abstractmethod
    def gradient_rows(self, X, y, theta, active):
        """Per-sample gradients of the data loss, ndarray of shape (n, n_params)."""

    def null_directions(self):
        """Unit directions along which the data term is flat and nothing penalises.

        Shape ``(n_params, r)``. A softmax is unchanged when the same constant is added
        to every class's intercept, so neither gradients nor curvature ever have a
        component there; the engine gives such directions a curvature of the data's
        own scale, which changes no update but keeps the stored inverse
        well-conditioned.
        """
        return np.zeros((self.n_params, 0))

    def factor_rank(self, kind):
        """Number ``q`` of factor rows per sample (see :meth:`factor_rows`)."""
        return 1

    def factor_rows(self, X, y, theta, active, kind):
        """Rows ``u`` with ``K_i = Σ_q u_iq u_iqᵀ``, shape ``(n, q, n_params)``."""
        if kind != "fisher":
            raise ValueError(f"{type(self).__name__} has no curvature {kind!r}")
        return self.gradient_rows(X, y, theta, active)[:, None, :]

    def gradient_sums(self, X, y, weights, theta, active, n_classes):
        """``Σ_{i: y_i=a} w_i g_i`` per class ``a``, shape (n_classes, n_params)."""
        out = np.zeros((n_classes, self.n_params), dtype=theta.dtype)
        for rows in row_chunks(X.shape[0], 8 * self.n_params):
            G = self.gradient_rows(X[rows], y[rows], theta, active)
            out += _sum_by_class(G * weights[rows, None], y[rows], n_classes)
        return out

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
    ):
        """``Σ_i w_i K_i`` restricted to each block, from per-sample gradient rows.

        With ``batch_size > 1`` the empirical Fisher is estimated from mini-batches
        (the paper's cheaper approximation): rows are shuffled with ``random_state``,
        grouped ``batch_size`` at a time, and each batch adds
        ``(Σ_{i∈B} √w_i g_i)(Σ_{i∈B} √w_i g_i)ᵀ``. Its expectation equals the
        per-sample sum when the rows' gradients are independent with mean zero
        (as at an optimum), and the products run over ``n / b`` rows.
        """
        if kind != "fisher":
            raise ValueError(f"{type(self).__name__} has no curvature {kind!r}")
        n = X.shape[0]
        order = np.arange(n)
        if batch_size > 1:
            order = check_random_state(random_state).permutation(n)
        blocks = [np.zeros((e - s, e - s), dtype=theta.dtype) for s, e in bounds]
        row_bytes = 8 * self.n_params * 2
        for chunk in row_chunks(n, row_bytes, multiple=batch_size):
            rows = order[chunk]
            G = self.gradient_rows(X[rows], y[rows], theta, active)
            G *= np.sqrt(weights[rows])[:, None]
            if batch_size > 1:
                G = _batch_sums(G, batch_size)
            for block, (s, e) in zip(blocks, bounds):
                accumulate_gram(block, G[:, s:e], G[:, s:e], same=True)
        return [symmetrize_from_lower(block) for block in blocks]


def _sum_by_class(values, y, n_classes):
    """Row sums of ``values`` grouped by the integer labels ``y``: a sparse GEMM."""
    indicator = sp.csr_matrix(
        (np.ones(len(y), dtype=values.dtype), (y, np.arange(len(y)))),
        shape=(n_classes, len(y)),
    )
    return np.asarray(indicator @ values)


def _batch_sums(G, batch_size):
    """Sums of consecutive groups of ``batch_size`` rows: a sparse GEMM."""
    n = G.shape[0]
    batch = np.arange(n) // batch_size
    indicator = sp.csr_matrix(
        (np.ones(n, dtype=G.dtype), (batch, np.arange(n))), shape=(batch[-1] + 1, n)
    )
    return np.asarray(indicator @ G)
