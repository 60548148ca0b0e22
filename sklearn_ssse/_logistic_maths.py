"""Gradients and curvature of binary and multinomial logistic regression.

Parameters are flattened row by row from the ``(n_outputs, width)`` matrix
``[coef_ | intercept_ / intercept_scaling]`` (``n_outputs`` is 1 for a binary model,
the number of classes for a multinomial one); ``x̃ = [x, intercept_scaling]``.

- Binary: ``p = σ(θᵀx̃)``, ``r = p − y``, ``g = r·x̃``; Hessian ``p(1−p)·x̃x̃ᵀ``,
  Fisher ``r²·x̃x̃ᵀ``.
- Multinomial: ``r = p − onehot(y)``, ``g = r ⊗ x̃``; Hessian ``(diag p − ppᵀ) ⊗ x̃x̃ᵀ``,
  Fisher ``rrᵀ ⊗ x̃x̃ᵀ``.

Block ``(a, b)`` of either matrix is ``X̃ᵀ diag(v_ab) X̃``: one weighted GEMM (a SYRK on
the diagonal) per pair of output rows, over chunks of rows, so nothing of size
``n × n_params`` is ever formed.
"""

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, softmax
from sklearn import get_config
from sklearn.utils import check_random_state

from . import _array_api
from ._linalg import (
    add_sparse_into,
    as_dense,
    symmetrize_from_lower,
)
from ._maths import (
    MAX_CHUNK_BYTES,
    ModelMaths,
    n_row_groups,
    row_chunks,
    sum_over_row_groups,
)

# A sparse product (scipy's SpGEMM, one thread) costs about this many dense
# multiply-adds per scalar product it makes (measured: 50–80 ns against 0.07 ns
# in a BLAS GEMM on two cores). Below it, densifying chunks of a sparse X is
# faster; TF-IDF text is thousands of times above it.
SPARSE_PRODUCT_COST = 500

# Rows of a sparse chunk are grouped until the products they make could hold this
# much (each stored entry of a product costs about 24 bytes: value, index, and
# the flat index of its place in the block).
MAX_SPARSE_CHUNK_BYTES = 64 * 2**20
PRODUCT_ENTRY_BYTES = 24

# A dense build's chunks hold at least this many rows (where the blocks allow:
# a chunk is never larger than the largest block nor GRAM_CHUNK_MAX_BYTES): each
# chunk's Gram is a d × d temporary added to the accumulator, paid back only
# when the chunk's SYRK is ~k/2 times the add. It also bounds rounding: a
# float32 chunk product errs by at most k·u relative to Σ|x̃||x̃|ᵀ (u = 2⁻²⁴),
# and the chunks are summed in float64 (docs/scaling.md).
GRAM_CHUNK_ROWS = 2048
GRAM_CHUNK_MAX_BYTES = 64 * 2**20
# A chunk's weighted copy of about this size stays in a core's L2 cache between
# its writing and the SYRK that reads it (measured: 2 048 rows of 200 float32
# columns take 1.35× one SYRK of the whole X with the copy and the
# probabilities, 5 115 rows 1.49×).
GRAM_CHUNK_TARGET_BYTES = 2**20
# Rows whose curvature weight's root is below this add their class sums directly
# (``R / √v`` would overflow); others ride on the diagonal SYRK.
_ROOT_FLOOR = 2.0**-30


def sparse_products_pay(X, width):
    """Whether sparse products beat dense GEMMs on the densified rows of ``X``.

    A row with ``k`` non-zeros makes at most ``k²`` scalar products in a sparse
    Gram product and ``width²`` in a dense one.
    """
    nnz = _row_nnz(X)
    return SPARSE_PRODUCT_COST * float(nnz @ nnz) < X.shape[0] * float(width) ** 2


def sparse_row_chunks(X, row_bytes=0):
    """Slices of the rows of a sparse ``X`` whose Gram products fit a bounded memory.

    A row with ``k`` non-zeros adds at most ``k²`` entries to a chunk's sparse
    product; chunks are cut where that bound (times :data:`PRODUCT_ENTRY_BYTES`),
    plus ``row_bytes`` of dense temporaries per row, reaches the working memory
    (scikit-learn's ``working_memory``, at most :data:`MAX_SPARSE_CHUNK_BYTES`).
    A chunk holds at least one row.
    """
    budget = min(get_config()["working_memory"] * 2**20, MAX_SPARSE_CHUNK_BYTES)
    nnz = _row_nnz(X)
    cost = np.cumsum(PRODUCT_ENTRY_BYTES * nnz * (nnz + 1) + row_bytes + 1)
    n, start = X.shape[0], 0
    while start < n:
        base = cost[start - 1] if start else 0.0
        stop = int(np.searchsorted(cost, base + budget, side="right"))
        stop = min(max(stop, start + 1), n)
        yield slice(start, stop)
        start = stop


def _row_nnz(X):
    """Stored entries of each row of a sparse matrix or array, as floats."""
    X = sp.csr_matrix(X)  # no copy for CSR
    return np.diff(X.indptr).astype(np.float64)


class _ColumnSlices:
    """Column ranges of a sparse chunk, as CSC matrices, each made once."""

    def __init__(self, X):
        self.X = sp.csc_matrix(X)
        self.cache = {}

    def __call__(self, lo, hi):
        if (lo, hi) not in self.cache:
            full = lo == 0 and hi == self.X.shape[1]
            self.cache[lo, hi] = self.X if full else self.X[:, lo:hi]
        return self.cache[lo, hi]


__all__ = ["LogisticMaths", "stacked_binary_terms"]


def gram_chunk_rows(row_bytes, bounds, itemsize):
    """Rows of a dense build's chunk: :data:`GRAM_CHUNK_ROWS`, or more where a
    chunk of them is smaller than :data:`GRAM_CHUNK_TARGET_BYTES` (narrow data),
    within the working memory (as :func:`~sklearn_ssse._maths.row_chunks`);
    where the working memory holds fewer, raised to :data:`GRAM_CHUNK_ROWS` as
    long as the chunk stays below the largest block and
    :data:`GRAM_CHUNK_MAX_BYTES`."""
    row_bytes = max(int(row_bytes), 1)
    budget = min(get_config()["working_memory"] * 2**20, MAX_CHUNK_BYTES)
    allowed = max(int(budget // row_bytes), 1)
    if allowed >= GRAM_CHUNK_ROWS:
        return min(max(GRAM_CHUNK_ROWS, GRAM_CHUNK_TARGET_BYTES // row_bytes), allowed)
    largest = itemsize * max((stop - start) ** 2 for start, stop in bounds)
    cap = int(min(largest, GRAM_CHUNK_MAX_BYTES) // row_bytes)
    return max(allowed, min(GRAM_CHUNK_ROWS, cap))


def _finish_blocks(blocks, dtype):
    """Mirror each accumulated lower triangle and cast it to the state's dtype,
    one block at a time (a float64 accumulator is freed as its copy is made)."""
    finished = []
    while blocks:
        finished.append(symmetrize_from_lower(blocks.pop(0)).astype(dtype, copy=False))
    return finished


def stacked_binary_terms(Xt, labels, points, kind):
    """Residuals and curvature scales of many binary outputs on the same rows.

    Output ``o`` is a binary logistic model with parameters ``points[o]``; row
    ``i`` has label ``labels[i, o]`` in ``{0, 1}``. One GEMM gives every output's
    probabilities ``p = σ(X̃ θ_oᵀ)``.

    Parameters
    ----------
    Xt : ndarray of shape (k, width)
        The augmented rows ``x̃ = [x, intercept_scaling]``.
    labels : ndarray of shape (k, n_outputs)
        Class indices (0 or 1).
    points : ndarray of shape (n_outputs, width)
        Each output's parameters.
    kind : {"hessian", "fisher"}

    Returns
    -------
    residuals : ndarray of shape (k, n_outputs)
        ``r = p − y``: row ``i``'s gradient for output ``o`` is ``r[i, o] x̃_i``.
    scales : ndarray of shape (k, n_outputs)
        ``c`` with ``K_io = c[i, o]² x̃_i x̃_iᵀ`` (``√(p(1−p))`` or ``r``).
    """
    p = expit(Xt @ points.T)
    residuals = p - labels
    scales = residuals if kind == "fisher" else np.sqrt(p * (1 - p))
    return residuals, scales


class LogisticMaths(ModelMaths):
    """Maths of an L2-penalised logistic regression (see the module docstring).

    Parameters
    ----------
    n_features : int
        Number of input features ``m``.
    n_classes : int
        Number of classes (2: binary model with one output row).
    fit_intercept : bool
        Whether ``x̃`` carries the intercept column.
    intercept_scaling : float, default=1.0
        Value of the intercept column (liblinear's synthetic feature).
    """

    kinds = ("fisher", "hessian")

    def __init__(self, n_features, n_classes, fit_intercept, intercept_scaling=1.0):
        self.n_features = n_features
        self.n_classes = n_classes
        self.fit_intercept = fit_intercept
        self.intercept_scaling = float(intercept_scaling)
        self.n_outputs = 1 if n_classes == 2 else n_classes
        self.width = n_features + int(fit_intercept)
        self.n_params = self.n_outputs * self.width

    # -- parameters --------------------------------------------------------------
    def group_bounds(self):
        return [(a * self.width, (a + 1) * self.width) for a in range(self.n_outputs)]

    def coef_mask(self):
        """Boolean mask of the coordinates that are ``coef_`` (not intercept)."""
        mask = np.ones((self.n_outputs, self.width), dtype=bool)
        if self.fit_intercept:
            mask[:, -1] = False
        return mask.ravel()

    def null_directions(self):
        if self.n_outputs == 1 or not self.fit_intercept:
            return super().null_directions()
        direction = np.zeros((self.n_outputs, self.width))
        direction[:, -1] = 1 / np.sqrt(self.n_outputs)
        return direction.reshape(-1, 1)

    def pack(self, coef, intercept):
        """Flat parameter vector from scikit-learn's ``coef_`` and ``intercept_``."""
        xp, _ = _array_api.namespace(coef)
        if xp is not None:
            if not self.fit_intercept:
                return xp.reshape(xp.asarray(coef, copy=True), (-1,))
            column = xp.astype(intercept[:, None] / self.intercept_scaling, coef.dtype)
            return xp.reshape(xp.concat([coef, column], axis=1), (-1,))
        if not self.fit_intercept:
            return np.array(coef, copy=True).ravel()
        column = np.asarray(intercept)[:, None] / self.intercept_scaling
        return np.hstack([coef, column.astype(coef.dtype)]).ravel()

    def unpack(self, theta):
        """``(coef_, intercept_)`` from a flat parameter vector."""
        xp, device = _array_api.namespace(theta)
        if xp is not None:
            Theta = xp.reshape(theta, (self.n_outputs, self.width))
            if not self.fit_intercept:
                zeros = xp.zeros(self.n_outputs, dtype=theta.dtype, device=device)
                return xp.asarray(Theta, copy=True), zeros
            intercept = Theta[:, -1] * self.intercept_scaling
            return xp.asarray(Theta[:, :-1], copy=True), intercept
        Theta = theta.reshape(self.n_outputs, self.width)
        if not self.fit_intercept:
            return Theta.copy(), np.zeros(self.n_outputs, dtype=theta.dtype)
        intercept = Theta[:, -1] * theta.dtype.type(self.intercept_scaling)
        return Theta[:, :-1].copy(), intercept.copy()

    # -- per-chunk quantities ----------------------------------------------------
    def _augment(self, X):
        """``X̃ = [X, intercept_scaling]`` as a dense copy: only for the few rows of a
        request, never on the training set."""
        X = X.toarray() if sp.issparse(X) else X
        if not self.fit_intercept:
            return X
        column = np.full((X.shape[0], 1), self.intercept_scaling, dtype=X.dtype)
        return np.hstack([X, column])

    def _split(self, Theta):
        """``(W, b)``: the feature columns and the intercept term of ``x̃ᵀθ``."""
        if not self.fit_intercept:
            return Theta, np.zeros(self.n_outputs, dtype=Theta.dtype)
        return Theta[:, :-1], Theta[:, -1] * Theta.dtype.type(self.intercept_scaling)

    def _residuals(self, X, y, Theta, active):
        """Probabilities ``p`` and residuals ``r = p − y``, each (n, n_outputs)."""
        W, b = self._split(Theta)
        Z = np.asarray(X @ W.T) + b
        if self.n_outputs == 1:
            p = expit(Z)
            target = (y == 1)[:, None]
        else:
            if not np.all(active):
                Z[:, ~active] = -np.inf
            p = softmax(Z, axis=1)
            target = np.zeros_like(p, dtype=bool)
            target[np.arange(len(y)), y] = True
        return p, p - target

    def _pair_weights(self, p, r, kind, a, b):
        """Per-row weight ``v_ab`` of block ``(a, b)``: ``K_i[a, b]``."""
        if kind == "fisher":
            return r[:, a] * r[:, b]
        if a == b:
            return p[:, a] * (1 - p[:, a])
        return -p[:, a] * p[:, b]

    def kronecker_weights(self, X, y, theta, active, kind):
        """Per-row ``V_i`` with ``K_i = V_i ⊗ x̃_i x̃_iᵀ``, shape ``(n, o, o)``.

        Used by :class:`~sklearn_ssse._curvature_cg.ConjugateGradientCurvature`,
        which stores the blocks ``X̃ᵀ diag(V[:, a, b]) X̃`` instead of an inverse.
        """
        Theta = theta.reshape(self.n_outputs, self.width)
        p, r = self._residuals(X, y, Theta, active)
        if kind == "fisher":
            return r[:, :, None] * r[:, None, :]
        if self.n_outputs == 1:
            return (p * (1 - p))[:, :, None]
        V = -p[:, :, None] * p[:, None, :]
        V[:, np.arange(p.shape[1]), np.arange(p.shape[1])] += p
        return V

    def gradient_rows(self, X, y, theta, active):
        xp, device = _array_api.namespace(X, theta)
        if xp is not None:
            _, r = self._residuals_xp(X, y, theta, active, xp, device)
            Xt = self._augment_xp(X, xp, device)
            return xp.reshape(r[:, :, None] * Xt[:, None, :], (X.shape[0], -1))
        Theta = theta.reshape(self.n_outputs, self.width)
        _, r = self._residuals(X, y, Theta, active)
        Xt = self._augment(X)
        return (r[:, :, None] * Xt[:, None, :]).reshape(len(y), -1)

    def factor_rank(self, kind):
        return 1 if kind == "fisher" or self.n_outputs == 1 else self.n_outputs

    def factor_rows(self, X, y, theta, active, kind):
        if kind == "fisher":
            return self.gradient_rows(X, y, theta, active)[:, None, :]
        xp, device = _array_api.namespace(X, theta)
        if xp is not None:
            return self._hessian_factor_rows_xp(X, y, theta, active, xp, device)
        Theta = theta.reshape(self.n_outputs, self.width)
        p, _ = self._residuals(X, y, Theta, active)
        Xd = self._augment(X)
        if self.n_outputs == 1:
            L = np.sqrt(p * (1 - p))[:, :, None]  # (n, 1, q=1)
        else:
            # diag(p) − ppᵀ = L Lᵀ with L = diag(√p) − p √pᵀ (uses Σ p = 1).
            sqrt_p = np.sqrt(p)
            L = -p[:, :, None] * sqrt_p[:, None, :]
            L[:, np.arange(p.shape[1]), np.arange(p.shape[1])] += sqrt_p
        # factor[i, q, a, :] = L[i, a, q] · x̃_i
        rows = L.transpose(0, 2, 1)[:, :, :, None] * Xd[:, None, None, :]
        return rows.reshape(len(y), L.shape[2], -1)

    # -- sums over the training set ----------------------------------------------
    def gradient_sums(self, X, y, weights, theta, active, n_classes):
        xp, device = _array_api.namespace(X, theta)
        if xp is not None:
            return self._gradient_sums_xp(
                X, y, weights, theta, active, n_classes, xp, device
            )
        Theta = theta.reshape(self.n_outputs, self.width)
        out = np.zeros((n_classes, self.n_outputs, self.width), dtype=theta.dtype)
        row_bytes = 4 * X.dtype.itemsize * self.n_outputs + 8 * n_classes
        for rows in row_chunks(X.shape[0], row_bytes):
            Xc, yc = X[rows], y[rows]
            _, r = self._residuals(Xc, yc, Theta, active)
            self._add_class_sums(out, Xc, yc, r, weights[rows])
        return out.reshape(n_classes, -1)

    def _add_class_sums(self, out, Xc, yc, r, w):
        """``out[a, o] += Σ_{i∈class a} w_i r_io x̃_i`` over a chunk of rows.

        Every (class, output) pair at once: the ``(chunk, n_classes · n_outputs)``
        matrix ``R[i, (a, o)] = [y_i = a] w_i r_io`` times the chunk, one GEMM in
        the chunk's dtype (no float64 copy of a float32 chunk), added to ``out``
        in its own dtype (float64 in a build).
        """
        n_classes = out.shape[0]
        dtype = Xc.dtype if Xc.dtype in (np.float32, np.float64) else np.float64
        R = np.zeros((len(yc), n_classes, self.n_outputs), dtype=dtype)
        R[np.arange(len(yc)), yc, :] = r * w[:, None]
        R = R.reshape(len(yc), -1)
        sums = as_dense(Xc.T @ R).T.reshape(n_classes, self.n_outputs, -1)
        out[:, :, : self.n_features] += sums
        if self.fit_intercept:
            out[:, :, -1] += self.intercept_scaling * R.sum(
                axis=0, dtype=np.float64
            ).reshape(n_classes, self.n_outputs)

    @staticmethod
    def _class_residuals(yc, r, w, out):
        """``R[i, a, o] = [y_i = a] w_i r_io``, shape ``(chunk, n_classes, o)``."""
        R = np.zeros((len(yc), out.shape[0], r.shape[1]), dtype=r.dtype)
        R[np.arange(len(yc)), yc, :] = r * w[:, None]
        return R

    def _add_class_sums_from(self, out, Xc, R, outputs):
        """``out[:, o] += Σ_i R[i, :, o] x̃_i`` for the ``outputs`` (a mask): one
        GEMM with the chunk."""
        part = R[:, :, outputs]
        k, n_classes, n_out = part.shape
        flat = np.ascontiguousarray(part).reshape(k, -1)
        sums = as_dense(Xc.T @ flat).T.reshape(n_classes, n_out, -1)
        out[:, outputs, : self.n_features] += sums
        if self.fit_intercept:
            out[:, outputs, -1] += self.intercept_scaling * flat.sum(
                axis=0, dtype=np.float64
            ).reshape(n_classes, n_out)

    def curvature_blocks_and_gradient_sums(
        self,
        X,
        y,
        weights,
        sample_weight,
        theta,
        active,
        kind,
        bounds,
        n_classes,
        *,
        gram_weights=None,
        n_jobs=None,
        verbose=0,
    ):
        """:meth:`curvature_blocks` and :meth:`gradient_sums` in one pass.

        The rows' probabilities and each chunk of ``X`` serve both sums (NumPy or
        SciPy input, no mini-batches): the build reads the data once. With
        ``gram_weights`` (``b``), the certificate's Gram ``X̃ᵀ diag(b) X̃`` comes
        from the same chunks (a second SYRK per chunk, on the chunk while it is
        in cache; no scaling when ``b`` is constant).

        Returns
        -------
        blocks : list of ndarray
            As :meth:`curvature_blocks`.
        sums : ndarray of shape (n_classes, n_params)
            As :meth:`gradient_sums` with ``sample_weight``.
        gram : ndarray of shape (width, width), float64
            Only with ``gram_weights``: ``Σ_i b_i x̃_i x̃_iᵀ`` (float32 data:
            float32 chunk products summed in float64).
        """
        arrays = (y, weights, sample_weight)
        if gram_weights is not None:
            arrays = (*arrays, np.asarray(gram_weights))
        parts = self._summed_parts(
            X,
            arrays,
            n_jobs,
            verbose,
            theta=theta,
            active=active,
            kind=kind,
            bounds=bounds,
            n_classes=n_classes,
        )
        gram = None
        if gram_weights is not None:
            gram = symmetrize_from_lower(parts.pop())
        *blocks, sums = parts
        blocks = _finish_blocks(blocks, theta.dtype)
        sums = sums.reshape(n_classes, -1).astype(theta.dtype, copy=False)
        return (blocks, sums) if gram is None else (blocks, sums, gram)

    def _summed_parts(self, X, arrays, n_jobs, verbose, **kwargs):
        """:meth:`_curvature_part` summed over row groups (joblib).

        One group (the default) sums in float64 whatever the data's dtype; parallel
        groups each hold their partial blocks, in the state's dtype.
        """
        single = n_row_groups(X.shape[0], 1, n_jobs) == 1
        return sum_over_row_groups(
            self._curvature_part,
            X,
            arrays,
            n_jobs=n_jobs,
            verbose=verbose,
            sparse=sp.issparse(X) and sparse_products_pay(X, self.width),
            accumulate=np.float64 if single else None,
            **kwargs,
        )

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
        xp, device = _array_api.namespace(X, theta)
        if xp is not None:
            if batch_size > 1:
                if kind != "fisher":
                    raise ValueError("fisher_batch_size > 1 applies to the Fisher only")
                return self._minibatch_fisher_xp(
                    X,
                    y,
                    weights,
                    theta,
                    active,
                    bounds,
                    batch_size,
                    random_state,
                    xp,
                    device,
                )
            return self._curvature_blocks_xp(
                X, y, weights, theta, active, kind, bounds, xp, device
            )
        if batch_size > 1:
            if kind != "fisher":
                raise ValueError("fisher_batch_size > 1 applies to the Fisher only")
            return super().curvature_blocks(
                X,
                y,
                weights,
                theta,
                active,
                kind,
                bounds,
                batch_size,
                random_state,
                n_jobs=n_jobs,
                verbose=verbose,
            )
        blocks = self._summed_parts(
            X,
            (y, weights),
            n_jobs,
            verbose,
            theta=theta,
            active=active,
            kind=kind,
            bounds=bounds,
        )
        return _finish_blocks(blocks, theta.dtype)

    def _curvature_part(
        self,
        X,
        y,
        weights,
        sample_weight=None,
        gram_weights=None,
        *,
        rows,
        progress,
        theta,
        active,
        kind,
        bounds,
        sparse,
        n_classes=None,
        accumulate=None,
    ):
        """Lower triangles of the blocks over the rows of ``X`` (``rows`` is None).

        ``sparse``: sparse products over chunks of rows sized by their non-zeros
        (:func:`sparse_row_chunks`); otherwise dense SYRK/GEMMs (numpy's BLAS
        only) over chunks of at least :data:`GRAM_CHUNK_ROWS` rows where the
        blocks allow, a sparse ``X`` being densified one chunk at a time. The
        sums are kept in ``accumulate`` (default: ``theta``'s dtype). With
        ``sample_weight``, the gradient sums by class (:meth:`gradient_sums`)
        follow the blocks in the returned list, from the same chunks; with
        ``gram_weights``, the lower triangle of the certificate's Gram last.
        """
        Theta = theta.reshape(self.n_outputs, self.width)
        dtype = np.dtype(theta.dtype if accumulate is None else accumulate)
        blocks = [np.zeros((e - s, e - s), dtype=dtype) for s, e in bounds]
        sums = gram = None
        if sample_weight is not None:
            sums = np.zeros((n_classes, self.n_outputs, self.width), dtype)
        if gram_weights is not None:
            gram = np.zeros((self.width, self.width), np.float64)
        segments = [self._segments(s, e) for s, e in bounds]
        densify = sp.issparse(X) and not sparse
        widest = max(hi - lo for segs in segments for _, lo, hi, _ in segs)
        if sparse:
            chunks = sparse_row_chunks(X, 4 * X.dtype.itemsize * self.n_outputs)
        else:
            # Per row: one weighted copy of the widest segment, p and r (and
            # the densified row of a sparse X).
            extra = 0 if n_classes is None else n_classes
            row_bytes = X.dtype.itemsize * (
                widest + extra + 4 * self.n_outputs + densify * self.n_features
            )
            if gram is not None:
                row_bytes += X.dtype.itemsize * self.n_features
            size = gram_chunk_rows(row_bytes, bounds, X.dtype.itemsize)
            n = X.shape[0]
            chunks = (slice(a, min(a + size, n)) for a in range(0, n, size))
            buffer = np.empty(min(size, n) * (widest + extra), dtype=X.dtype)
        for chunk in chunks:
            Xc = X[chunk]
            p, r = self._residuals(Xc, y[chunk], Theta, active)
            w = weights[chunk]
            if sparse:
                if sums is not None:
                    self._add_class_sums(sums, Xc, y[chunk], r, sample_weight[chunk])
                columns = _ColumnSlices(Xc)
                for block, segs in zip(blocks, segments):
                    self._add_block_sparse(block, segs, columns, p, r, w, kind)
                if gram is not None:
                    self._add_gram(gram, Xc, gram_weights[chunk])
            else:
                Xc = Xc.toarray() if densify else np.asarray(Xc)
                R = done = None
                if sums is not None:  # the class sums ride on the diagonal SYRKs
                    R = self._class_residuals(y[chunk], r, sample_weight[chunk], sums)
                    R = R.astype(Xc.dtype, copy=False)
                    done = np.zeros(self.n_outputs, dtype=bool)
                for block, segs in zip(blocks, segments):
                    self._add_block(
                        block, segs, Xc, p, r, w, kind, buffer, R, sums, done
                    )
                if sums is not None and not done.all():
                    self._add_class_sums_from(sums, Xc, R, ~done)
                if gram is not None:
                    self._add_gram(gram, Xc, gram_weights[chunk], buffer)
            progress.update(chunk.stop - chunk.start)
        parts = blocks if sums is None else [*blocks, sums]
        return parts if gram is None else [*parts, gram]

    def _add_gram(self, gram, Xc, b, buffer=None):
        """Lower triangle of ``gram += X̃cᵀ diag(b) X̃c``: the chunk's SYRK as it
        is when ``b`` is constant (then scaled), else of ``√b ⊙ Xc``."""
        m, s = self.n_features, self.intercept_scaling
        b = np.asarray(b, dtype=np.float64)
        constant = b.size > 0 and np.all(b == b[0])
        if sp.issparse(Xc):
            Y = Xc if constant else sp.csr_matrix(Xc.multiply(np.sqrt(b)[:, None]))
            product = sp.csr_matrix(Y.T) @ sp.csr_matrix(Y)
            if constant:
                product = product * float(b[0])
            add_sparse_into(gram, product, unique=True)
            column = np.asarray(Xc.T @ b).ravel()
        else:
            if constant:
                gram[:m, :m] += float(b[0]) * (Xc.T @ Xc)
            else:
                Y = np.multiply(
                    Xc,
                    np.sqrt(b).astype(Xc.dtype)[:, None],
                    out=buffer[: Xc.size].reshape(Xc.shape)
                    if buffer is not None and buffer.size >= Xc.size
                    else None,
                )
                gram[:m, :m] += Y.T @ Y
            column = b.astype(Xc.dtype) @ Xc
        if self.fit_intercept:
            gram[m, :m] += s * column
            gram[m, m] += s * s * b.sum()

    def _segments(self, start, stop):
        """Pieces ``(output row, first column, stop column, offset)`` of a block."""
        segs = []
        for a in range(start // self.width, (stop - 1) // self.width + 1):
            lo = max(start, a * self.width) - a * self.width
            hi = min(stop, (a + 1) * self.width) - a * self.width
            segs.append((a, lo, hi, a * self.width + lo - start))
        return segs

    def _add_block(
        self, block, segs, X, p, r, w, kind, buffer, R=None, sums=None, done=None
    ):
        """Add ``Σ_i v_ab,i x̃_i[J_b] x̃_i[J_a]ᵀ`` to the lower triangle of a block.

        Each pair of segments is one product of the chunk's columns in the data's
        dtype, with numpy's BLAS. On the diagonal (``v ≥ 0``) a SYRK of
        ``Y = [√v ⊙ X[:, J_a], s√v, R_a / √v]``: its first columns give the
        block (the intercept's row and corner included), the last ones the class
        sums of output ``a`` (``Yᵀ (R_a / √v) = Σ_i R_ia x̃_i``), for a few more
        columns of flops instead of a pass over the chunk; rows where ``√v`` is
        below :data:`_ROOT_FLOOR` add their sums directly. Off the diagonal a
        GEMM of ``(v ⊙ X[:, J_b])ᵀ X[:, J_a]``. ``done[a]`` is set where output
        ``a``'s class sums were made. The caller mirrors the lower triangle.
        """
        m, s = self.n_features, self.intercept_scaling
        k = X.shape[0]
        for i, (a, lo_a, hi_a, off_a) in enumerate(segs):
            fa = min(hi_a, m) - lo_a
            Fa = X[:, lo_a : lo_a + fa]
            for b, lo_b, hi_b, off_b in segs[i:]:
                v = w * self._pair_weights(p, r, kind, a, b)
                part = block[off_b : off_b + hi_b - lo_b, off_a : off_a + hi_a - lo_a]
                fb = min(hi_b, m) - lo_b
                Fb = X[:, lo_b : lo_b + fb]
                if a == b and np.all(v >= 0):
                    root = np.sqrt(v).astype(X.dtype, copy=False)
                    width = hi_a - lo_a
                    ride = sums is not None and not done[a] and width == self.width
                    columns = width + (R.shape[1] if ride else 0)
                    Y = buffer[: k * columns].reshape(k, columns)
                    np.multiply(Fa, root[:, None], out=Y[:, :fa])
                    if hi_a > m:
                        np.multiply(root, s, out=Y[:, fa])
                    if ride:
                        low = root < _ROOT_FLOOR
                        safe = np.where(low, 1, root)[:, None]
                        np.divide(R[:, :, a], safe, out=Y[:, width:])
                        Y[low, width:] = 0
                    P = Y.T @ Y  # numpy's SYRK: Y is Y
                    part += P[:width, :width]
                    if ride:
                        sums[:, a, :] += P[width:, :width]
                        done[a] = True
                        if low.any():
                            mask = np.zeros(self.n_outputs, dtype=bool)
                            mask[a] = True
                            self._add_class_sums_from(sums, X[low], R[low], mask)
                    continue
                v = v.astype(X.dtype, copy=False)
                weighted = np.multiply(
                    Fb, v[:, None], out=buffer[: k * fb].reshape(k, fb)
                )
                part[:fb, :fa] += weighted.T @ Fa
                if hi_b > m:
                    part[fb, :fa] += s * (v @ Fa)
                if hi_a > m:
                    part[:fb, fa] += s * weighted.sum(axis=0, dtype=np.float64)
                if hi_a > m and hi_b > m:
                    part[fb, fa] += s * s * float(v.sum(dtype=np.float64))

    def _add_block_sparse(self, block, segs, columns, p, r, w, kind):
        """:meth:`_add_block` for a sparse chunk: one sparse product per pair of
        segments, ``X[:, J_b]ᵀ diag(v_ab) X[:, J_a]``, whose stored entries alone
        are added to the block (its cost follows the non-zeros), and the
        intercept's row, column and corner as dense vectors."""
        m, s = self.n_features, self.intercept_scaling
        for i, (a, lo_a, hi_a, off_a) in enumerate(segs):
            Fa = columns(lo_a, min(hi_a, m))
            na = Fa.shape[1]
            for b, lo_b, hi_b, off_b in segs[i:]:
                v = w * self._pair_weights(p, r, kind, a, b)
                part = block[off_b : off_b + hi_b - lo_b, off_a : off_a + hi_a - lo_a]
                Fb = columns(lo_b, min(hi_b, m))
                nb = Fb.shape[1]
                if na and nb:
                    weighted = Fa.copy()
                    weighted.data *= v[weighted.indices]
                    product = Fb.T @ weighted  # X[:, J_b]ᵀ diag(v) X[:, J_a]
                    add_sparse_into(block, product, (off_b, off_a), unique=True)
                if hi_b > m and na:  # the intercept's row: s · vᵀ X[:, J_a]
                    part[nb, :na] += s * (Fa.T @ v)
                if hi_a > m and nb:
                    part[:nb, na] += s * (Fb.T @ v)
                if hi_a > m and hi_b > m:
                    part[nb, na] += s * s * v.sum()

    # -- the array API path (PyTorch, CuPy, array-api-strict: dense input) ---------
    # The same quantities as above, written with the array API standard only, so
    # that they run on the arrays' device. NumPy arrays never come here.
    def _augment_xp(self, X, xp, device):
        if not self.fit_intercept:
            return X
        column = xp.full(
            (X.shape[0], 1), self.intercept_scaling, dtype=X.dtype, device=device
        )
        return xp.concat([X, column], axis=1)

    def _residuals_xp(self, X, y, theta, active, xp, device):
        """``p`` and ``r = p − onehot(y)``, each (n, n_outputs), on the device.

        ``y`` (class indices) and ``active`` may be NumPy: they are uploaded.
        """
        Theta = xp.reshape(theta, (self.n_outputs, self.width))
        y = _array_api.to_device(y, xp, device)
        if self.fit_intercept:
            Z = X @ Theta[:, :-1].T + Theta[:, -1] * self.intercept_scaling
        else:
            Z = X @ Theta.T
        if self.n_outputs == 1:
            p = 1.0 / (1.0 + xp.exp(-Z))
            target = xp.astype(y == 1, X.dtype)[:, None]
        else:
            active = _array_api.to_device(np.asarray(active, dtype=bool), xp, device)
            Z = xp.where(active[None, :], Z, -xp.inf)
            Z = Z - xp.max(Z, axis=1, keepdims=True)
            p = xp.exp(Z)
            p = p / xp.sum(p, axis=1, keepdims=True)
            classes = xp.arange(self.n_outputs, dtype=y.dtype, device=device)
            target = xp.astype(y[:, None] == classes[None, :], X.dtype)
        return p, p - target

    def _hessian_factor_rows_xp(self, X, y, theta, active, xp, device):
        p, _ = self._residuals_xp(X, y, theta, active, xp, device)
        Xd = self._augment_xp(X, xp, device)
        if self.n_outputs == 1:
            L = xp.sqrt(p * (1 - p))[:, :, None]
        else:
            sqrt_p = xp.sqrt(p)
            eye = xp.eye(self.n_outputs, dtype=p.dtype, device=device)
            L = (
                -p[:, :, None] * sqrt_p[:, None, :]
                + eye[None, :, :] * sqrt_p[:, None, :]
            )
        rows = xp.permute_dims(L, (0, 2, 1))[:, :, :, None] * Xd[:, None, None, :]
        return xp.reshape(rows, (X.shape[0], L.shape[2], -1))

    def _gradient_sums_xp(self, X, y, weights, theta, active, n_classes, xp, device):
        """Per-class sums ``Σ_{y_i=a} w_i r_i ⊗ x̃_i``: one GEMM with the one-hot
        matrix of the labels per chunk of rows."""
        y = _array_api.to_device(y, xp, device)
        weights = _array_api.to_device(weights, xp, device, dtype=X.dtype)
        out = xp.zeros(
            (n_classes, self.n_outputs * self.width), dtype=theta.dtype, device=device
        )
        classes = xp.arange(n_classes, dtype=y.dtype, device=device)
        itemsize = xp.finfo(X.dtype).bits // 8
        row_bytes = itemsize * (2 * self.n_outputs * self.width + n_classes)
        for rows in row_chunks(X.shape[0], row_bytes):
            Xc, yc = X[rows, ...], y[rows]
            _, r = self._residuals_xp(Xc, yc, theta, active, xp, device)
            r = r * weights[rows][:, None]
            onehot = xp.astype(classes[:, None] == yc[None, :], X.dtype)
            Xt = self._augment_xp(Xc, xp, device)
            # (n_classes, n) @ (n, n_outputs·width)
            G = xp.reshape(r[:, :, None] * Xt[:, None, :], (Xc.shape[0], -1))
            out = out + onehot @ G
        return out

    def _curvature_blocks_xp(
        self, X, y, weights, theta, active, kind, bounds, xp, device
    ):
        """Blocks of ``Σ_i w_i K_i``: per chunk and pair of output rows, one
        ``X̃ᵀ diag(v_ab) X̃`` product on the device (both triangles are written:
        the standard has no in-place SYRK)."""
        y = _array_api.to_device(y, xp, device)
        weights = _array_api.to_device(weights, xp, device, dtype=X.dtype)
        blocks = [
            xp.zeros((e - s, e - s), dtype=theta.dtype, device=device)
            for s, e in bounds
        ]
        segments = [self._segments(s, e) for s, e in bounds]
        widest = max(hi - lo for segs in segments for _, lo, hi, _ in segs)
        itemsize = xp.finfo(X.dtype).bits // 8
        row_bytes = itemsize * (2 * widest + 4 * self.n_outputs)
        for rows in row_chunks(X.shape[0], row_bytes):
            Xc = X[rows, ...]
            p, r = self._residuals_xp(Xc, y[rows], theta, active, xp, device)
            Xt = self._augment_xp(Xc, xp, device)
            w = weights[rows]
            for block, segs in zip(blocks, segments):
                for i, (a, lo_a, hi_a, off_a) in enumerate(segs):
                    for b, lo_b, hi_b, off_b in segs[i:]:
                        v = w * self._pair_weights(p, r, kind, a, b)
                        part = (Xt[:, lo_b:hi_b] * v[:, None]).T @ Xt[:, lo_a:hi_a]
                        rb = slice(off_b, off_b + hi_b - lo_b)
                        ra = slice(off_a, off_a + hi_a - lo_a)
                        block[rb, ra] = block[rb, ra] + part
                        if a != b:
                            block[ra, rb] = block[ra, rb] + part.T
        return [_array_api.symmetrize(block) for block in blocks]

    def _minibatch_fisher_xp(
        self, X, y, weights, theta, active, bounds, batch_size, random_state, xp, device
    ):
        """The mini-batch Fisher of :meth:`ModelMaths.curvature_blocks` on the
        device: the same shuffle (drawn on the host), the same batches."""
        n = X.shape[0]
        order = check_random_state(random_state).permutation(n)
        y = _array_api.to_device(y, xp, device)
        weights = _array_api.to_device(weights, xp, device, dtype=X.dtype)
        blocks = [
            xp.zeros((e - s, e - s), dtype=theta.dtype, device=device)
            for s, e in bounds
        ]
        itemsize = xp.finfo(X.dtype).bits // 8
        for chunk in row_chunks(n, itemsize * self.n_params * 2, multiple=batch_size):
            rows = _array_api.to_device(order[chunk], xp, device)
            G = self.gradient_rows(
                xp.take(X, rows, axis=0), xp.take(y, rows, axis=0), theta, active
            )
            G = G * xp.sqrt(xp.take(weights, rows, axis=0))[:, None]
            m = G.shape[0]
            full = m - m % batch_size
            sums = xp.sum(
                xp.reshape(G[:full, ...], (full // batch_size, batch_size, -1)), axis=1
            )
            if full < m:
                sums = xp.concat([sums, xp.sum(G[full:, ...], axis=0)[None, :]])
            for i, (s, e) in enumerate(bounds):
                blocks[i] = blocks[i] + sums[:, s:e].T @ sums[:, s:e]
        return [_array_api.symmetrize(block) for block in blocks]
