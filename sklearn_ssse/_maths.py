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
from time import perf_counter

import numpy as np
import scipy.sparse as sp
from joblib import cpu_count, effective_n_jobs
from sklearn import get_config
from sklearn.utils import check_random_state
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

from ._linalg import accumulate_gram, symmetrize_from_lower

__all__ = [
    "BuildProgress",
    "ModelMaths",
    "n_row_groups",
    "row_chunks",
    "sum_over_row_groups",
]

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


class BuildProgress:
    """Progress of a long sum over rows, printed scikit-learn style when verbose.

    With ``verbose=1`` a line at most every ``interval`` seconds (5 by default)
    and one at the end; with ``verbose >= 2`` a line per update (per chunk, or
    per group of chunks when the build runs in parallel). Silent at ``0``.
    """

    def __init__(self, total, verbose=0, label="curvature", interval=None):
        self.total = int(total)
        self.verbose = int(verbose or 0)
        self.label = label
        if interval is None:
            interval = 5.0 if self.verbose < 2 else 0.0
        self.interval = interval
        self.done = 0
        self.start = self._last = perf_counter()

    def update(self, n_rows):
        """Count ``n_rows`` more rows done; print a line if one is due."""
        self.done += int(n_rows)
        if not self.verbose:
            return
        now = perf_counter()
        if now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            elapsed = now - self.start
            fraction = self.done / max(self.total, 1)
            left = elapsed * (1 - fraction) / fraction if fraction else float("nan")
            print(
                f"[{self.label}] {self.done}/{self.total} rows ({fraction:.0%}), "
                f"{elapsed:.1f} s elapsed, about {left:.1f} s left",
                flush=True,
            )


def n_row_groups(n_rows, multiple=1, n_jobs=None):
    """How many groups of rows a build runs in parallel: joblib's effective number
    of jobs (``n_jobs``, or the :func:`joblib.parallel_config` context when
    ``None``), at most one per ``multiple`` rows."""
    n_units = -(-int(n_rows) // int(multiple)) if n_rows else 1
    return max(1, min(int(effective_n_jobs(n_jobs)), n_units))


def sum_over_row_groups(
    part,
    X,
    arrays,
    *,
    n_jobs=None,
    verbose=0,
    multiple=1,
    order=None,
    label="curvature",
    **kwargs,
):
    """``Σ_g part(X_g, *arrays_g, rows=…, progress=…, **kwargs)`` over groups of rows.

    The sums a build makes (a curvature is ``Σ_i w_i K_i``) split over rows, so
    the rows are dealt to :func:`n_row_groups` groups, one joblib task each
    (:class:`sklearn.utils.parallel.Parallel`: the backend is the one of the
    :func:`joblib.parallel_config` context, so a Dask or Ray backend spreads the
    groups over a cluster), and the partial sums are added in order, so the
    result does not depend on the backend beyond rounding. With one group (the
    default outside a ``parallel_config`` context) ``part`` runs here on the
    whole data and nothing is copied.

    Parameters
    ----------
    part : callable
        ``part(X, *arrays, rows=rows, progress=progress, **kwargs)`` returns a list
        of arrays: the partial sums over the rows ``rows`` of ``X`` (an index
        array, or ``None`` for all of them in order). It must be picklable to run
        in other processes. It reports the rows it has done to
        ``progress.update``.
    X : {ndarray, sparse matrix} of shape (n_rows, n_features)
        The rows.
    arrays : tuple of ndarray of shape (n_rows, ...)
        Per-row arrays that go with ``X`` (labels, weights).
    n_jobs : int, default=None
        Number of groups (``None``: the ``parallel_config`` context's, else 1).
    verbose : int, default=0
        Progress lines (see :class:`BuildProgress`).
    multiple : int, default=1
        Every group but the last has a multiple of this many rows.
    order : ndarray of shape (n_rows,), default=None
        A permutation of the rows to follow (mini-batches); ``None``: their order.
    label : str, default="curvature"
        Name printed in the progress lines.
    **kwargs
        Passed to ``part``.

    Returns
    -------
    list of ndarray
    """
    n = X.shape[0]
    n_groups = n_row_groups(n, multiple, n_jobs)
    progress = BuildProgress(n, verbose, label)
    if n_groups == 1:
        return part(X, *arrays, rows=order, progress=progress, **kwargs)
    n_units = -(-n // multiple)
    edges = np.minimum(
        multiple * np.linspace(0, n_units, n_groups + 1).round().astype(int), n
    )
    groups = [
        slice(a, b) if order is None else order[a:b]
        for a, b in zip(edges[:-1], edges[1:])
    ]
    tasks = (
        delayed(part)(
            X[rows],
            *(array[rows] for array in arrays),
            rows=None,
            progress=BuildProgress(0),
            **kwargs,
        )
        for rows in groups
    )
    total = None
    # A thread per group shares the cores with BLAS's own threads: give each
    # its share (no effect on other processes or a cluster's workers).
    with threadpool_limits(limits=max(1, cpu_count() // n_groups), user_api="blas"):
        # Threads unless the context names a backend: BLAS and scipy's sparse
        # products release the GIL, and threads share X and return the partial
        # sums without copies.
        results = Parallel(n_jobs=n_groups, prefer="threads", return_as="generator")(
            tasks
        )
        for (a, b), result in zip(zip(edges[:-1], edges[1:]), results):
            if total is None:
                total = result
            else:
                for accumulated, term in zip(total, result):
                    accumulated += term
            progress.update(b - a)
    return total


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
        n_jobs=None,
        verbose=0,
    ):
        """``Σ_i w_i K_i`` restricted to each block, from per-sample gradient rows.

        With ``batch_size > 1`` the empirical Fisher is estimated from mini-batches
        (the paper's cheaper approximation): rows are shuffled with ``random_state``,
        grouped ``batch_size`` at a time, and each batch adds
        ``(Σ_{i∈B} √w_i g_i)(Σ_{i∈B} √w_i g_i)ᵀ``. Its expectation equals the
        per-sample sum when the rows' gradients are independent with mean zero
        (as at an optimum), and the products run over ``n / b`` rows.

        The sum runs over groups of rows through joblib (``n_jobs``, or the
        :func:`joblib.parallel_config` context: :func:`sum_over_row_groups`);
        ``verbose`` prints its progress.
        """
        if kind != "fisher":
            raise ValueError(f"{type(self).__name__} has no curvature {kind!r}")
        order = None
        if batch_size > 1:
            order = check_random_state(random_state).permutation(X.shape[0])
        blocks = sum_over_row_groups(
            self._fisher_part,
            X,
            (y, weights),
            n_jobs=n_jobs,
            verbose=verbose,
            multiple=batch_size,
            order=order,
            theta=theta,
            active=active,
            bounds=bounds,
            batch_size=batch_size,
        )
        return [symmetrize_from_lower(block) for block in blocks]

    def _fisher_part(
        self, X, y, weights, *, rows, progress, theta, active, bounds, batch_size
    ):
        """Lower triangles of the Fisher's blocks over the rows ``rows`` of ``X``."""
        blocks = [np.zeros((e - s, e - s), dtype=theta.dtype) for s, e in bounds]
        row_bytes = 8 * self.n_params * 2
        n = X.shape[0] if rows is None else len(rows)
        for chunk in row_chunks(n, row_bytes, multiple=batch_size):
            index = chunk if rows is None else rows[chunk]
            G = self.gradient_rows(X[index], y[index], theta, active)
            G *= np.sqrt(weights[index])[:, None]
            if batch_size > 1:
                G = _batch_sums(G, batch_size)
            for block, (s, e) in zip(blocks, bounds):
                accumulate_gram(block, G[:, s:e], G[:, s:e], same=True)
            progress.update(chunk.stop - chunk.start)
        return blocks


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
