"""The exact curvature of a linear model, stored compactly and solved iteratively.

For a linear model with ``n_outputs`` rows of ``width`` coefficients (logistic
regression: ``x̃ = [x, s]``), every per-row curvature is a Kronecker product
``K_i = V_i ⊗ x̃_i x̃_iᵀ`` with a small ``n_outputs × n_outputs`` matrix ``V_i``
(METHOD.md: ``diag(p) − ppᵀ`` for the Hessian, ``rrᵀ`` for the Fisher). The
matrix ``M = diag(prior) + Σ_i V_i ⊗ x̃_i x̃_iᵀ`` is therefore made of the blocks

    M_ab = G_ab (+ diag(prior_a) when a = b),   G_ab = X̃ᵀ diag(V[:, a, b]) X̃,

and each ``G_ab`` is symmetric. :class:`ConjugateGradientCurvature` keeps the
``G_ab`` with ``a ≤ b`` (never ``M⁻¹``) and applies ``M⁻¹`` by the preconditioned
conjugate gradient, preconditioned by the exact inverse of each output's own
block (dense data) or by the diagonal (sparse data). Memory:

- dense data: ``n_pairs × width²`` (the whole dense inverse is
  ``n_outputs² × width²``; ``n_pairs = n_outputs (n_outputs + 1) / 2``);
- sparse data: ``n_pairs × nnz(triu(X̃ᵀX̃))`` values plus one shared pattern: for
  text, the co-occurring pairs of features, far fewer than ``width²``.

With ``couple_outputs=False`` only the ``n_outputs`` diagonal blocks are kept: the
curvature between different outputs is dropped, the one approximation made here
(the ``block_size="class"`` structure, without the inverse).

A request's rows are taken out exactly: ``G_ab −= X̃_Sᵀ diag(V_S[:, a, b]) X̃_S``,
``O(n_pairs · k · width²)`` dense, ``O(n_pairs · nnz(X̃_SᵀX̃_S))`` sparse.

:class:`RowCurvature` (``curvature_structure="cg-rows"``, opt-in) holds the same
``M`` as the training rows themselves and their weights: far cheaper products and
builds, but the model then contains the remaining training rows.
"""

import copy
import secrets

import numpy as np
import scipy.sparse as sp
from scipy.linalg import cho_factor, cho_solve

from ._curvature import CurvatureInverse
from ._linalg import canonical_csr, weighted_column_squares

__all__ = [
    "ConjugateGradientCurvature",
    "RowCurvature",
    "augment_rows",
    "row_hashes",
    "rows_product",
]


def augment_rows(X, fit_intercept, intercept_scaling):
    """``X̃ = [X, intercept_scaling]``: CSR for sparse ``X``, ndarray otherwise."""
    if not fit_intercept:
        return sp.csr_matrix(X) if sp.issparse(X) else np.asarray(X)
    column = np.full((X.shape[0], 1), intercept_scaling, dtype=X.dtype)
    if sp.issparse(X):
        return sp.hstack([X, sp.csr_matrix(column)], format="csr")
    return np.hstack([X, column])


def rows_product(Xt, V, vector):
    """``Σ_i (V_i ⊗ x̃_i x̃_iᵀ) vector`` for rows ``X̃`` (dense or sparse) and their
    ``(k, n_outputs, n_outputs)`` weights, without forming ``x̃_i x̃_iᵀ``."""
    n_outputs = V.shape[1]
    x = np.asarray(vector).reshape(n_outputs, -1)
    Z = np.asarray(Xt @ x.T).reshape(Xt.shape[0], n_outputs)
    U = np.einsum("iab,ib->ia", V, Z)
    return np.asarray(Xt.T @ U).T.ravel().astype(x.dtype, copy=False)


def _output_pairs(n_outputs, couple_outputs):
    if not couple_outputs:
        return [(a, a) for a in range(n_outputs)]
    return [(a, b) for a in range(n_outputs) for b in range(a, n_outputs)]


def _pattern_positions(indptr, indices, width, rows, cols):
    """Positions in a CSR pattern of the entries ``(rows, cols)``; ``-1`` if absent."""
    touched = np.unique(rows)
    starts, stops = indptr[touched], indptr[touched + 1]
    lengths = stops - starts
    segment = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(
        lengths.sum()
    )
    keys = np.repeat(touched.astype(np.int64), lengths) * width + indices[segment]
    wanted = rows.astype(np.int64) * width + cols
    where = np.minimum(np.searchsorted(keys, wanted), max(len(keys) - 1, 0))
    found = keys[where] == wanted if len(keys) else np.zeros(len(wanted), bool)
    return np.where(found, segment[where] if len(keys) else -1, -1)


def _upper_gram(Xt, v):
    """``triu(X̃ᵀ diag(v) X̃)`` as canonical CSR (sorted, no duplicates)."""
    # scipy's sparse product sums each entry once: no duplicates, only unsorted.
    return _upper_triangle((Xt.T.multiply(v)).tocsr() @ Xt, duplicates=False)


def _upper_triangle(P, duplicates=True):
    """``triu(P)`` of a square CSR matrix as canonical CSR (sorted, no
    duplicates), in a few passes over ``P``'s entries, sorting only the half it
    keeps (scipy's ``triu`` goes through COO and back before the sort: 1.0–1.5 s
    against 0.9 s for the pattern of a 28 000-feature text Gram).
    ``duplicates=False``: ``P`` is known to hold each entry once (a product)."""
    P = sp.csr_matrix(P)
    if duplicates:
        P.sum_duplicates()
    n = P.shape[0]
    row_of = np.repeat(np.arange(n, dtype=P.indices.dtype), np.diff(P.indptr))
    keep = P.indices >= row_of
    del row_of
    kept_before = np.zeros(P.nnz + 1, dtype=P.indptr.dtype)
    np.cumsum(keep, out=kept_before[1:])
    U = sp.csr_matrix(
        (P.data[keep], P.indices[keep], kept_before[P.indptr]), shape=P.shape
    )
    U.sort_indices()
    U.has_canonical_format = True  # no duplicates, sorted
    return U


# From this many columns of values on (the pair blocks, and "cg"'s certificate
# Gram), they come from one pass over the rows' products (:func:`_pair_values`)
# instead of one sparse product per column (scipy's SpGEMM costs ~60 ns per
# product it makes: 21 pairs of a 6-class text model took ~25 s of a 27 s fit;
# binary text with its Gram: one pass as fast as the two products on 28 000
# features, 10 % slower on 7 700).
PAIRS_BY_CONTRIBUTIONS = 2
# Row products ``x̃_ij x̃_il`` (j ≤ l) handled at once by :func:`_pair_values`
# (about 60 bytes of temporaries each, and the pairs' sums of the pattern
# entries they touch).
CONTRIBUTIONS_PER_CHUNK = 2**20


def _pair_values(Xt, weights, indptr, indices, dtype, out=None):
    """The values of ``triu(X̃ᵀ diag(w) X̃)`` for every column ``w`` of ``weights``
    over the shared pattern ``(indptr, indices)``, ``(n_columns, nnz)``: the pair
    blocks (``w = V[:, a, b]``), and the certificate's Gram.

    Each row's products ``x̃_ij x̃_il`` (``j ≤ l``) are listed once and located
    in the pattern once (a binary search); for a range of pattern rows ``j``
    they form a sparse matrix ``S`` (pattern entry × training row, one product
    each: a row meets an entry at most once), and ``S @ V[:, pairs]`` gives
    every pair's sums at once, in one sparse-times-dense product, added to a
    contiguous stretch of the values. Where the former build made one sparse
    product per pair (scipy's SpGEMM, ~60 ns per multiply-add), this makes one
    binary search and one multiply-add per pair per row product.

    Parameters
    ----------
    Xt : scipy.sparse.csr_matrix of shape (n, width)
        The augmented rows (made canonical on a copy if they are not).
    weights : ndarray of shape (n, n_columns)
        One weight per row and column.
    indptr, indices : ndarray
        The upper-triangular CSR pattern (canonical) holding every product.
    dtype : dtype
        Of the sums and the returned values.
    out : list of ndarray of shape (nnz,) or None
        One zeroed array per column to add the values into (arrays that are
        not slices of one another's memory: a block kept longer than the others
        holds only its own); ``None``: a new ``(n_columns, nnz)`` array.

    Returns
    -------
    values : ndarray of shape (n_columns, nnz), or ``out``
    """
    Xt = canonical_csr(Xt)  # sorted rows, no repeats
    n, width = Xt.shape
    weights = np.ascontiguousarray(weights, dtype=dtype).reshape(n, -1)
    values = out
    if out is None:
        values = np.zeros((weights.shape[1], len(indices)), dtype=dtype)
    # Every stored entry of X̃ pairs with itself and the entries after it in its
    # row: split the pattern's rows (features) into ranges of about
    # CONTRIBUTIONS_PER_CHUNK such products.
    lengths = np.diff(Xt.indptr).astype(np.int64)
    row_of = np.repeat(np.arange(n), lengths)
    place = np.arange(Xt.nnz, dtype=np.int64) - np.repeat(
        Xt.indptr[:-1].astype(np.int64), lengths
    )
    partners = lengths[row_of] - place
    per_feature = np.cumsum(np.bincount(Xt.indices, partners, minlength=width))
    cuts = np.searchsorted(
        per_feature,
        np.arange(CONTRIBUTIONS_PER_CHUNK, per_feature[-1], CONTRIBUTIONS_PER_CHUNK),
    )
    for lo, hi in zip(np.r_[0, cuts + 1], np.r_[cuts + 1, width]):
        if hi <= lo:
            continue
        first, last = indptr[lo], indptr[hi]
        keys = np.repeat(
            np.arange(lo, hi, dtype=np.int64), np.diff(indptr[lo : hi + 1])
        )
        keys = keys * width + indices[first:last]
        mine = np.flatnonzero((Xt.indices >= lo) & (Xt.indices < hi))
        # one feature alone may pass the chunk (a word in every document): its
        # entries then go in groups of about CONTRIBUTIONS_PER_CHUNK products
        reach = np.cumsum(partners[mine])
        groups = np.searchsorted(
            reach,
            np.arange(
                CONTRIBUTIONS_PER_CHUNK,
                reach[-1] if len(reach) else 0,
                CONTRIBUTIONS_PER_CHUNK,
            ),
        )
        for part in np.split(mine, groups + 1):
            if not len(part):
                continue
            A = np.repeat(part, partners[part])
            B = A + (
                np.arange(len(A), dtype=np.int64)
                - np.repeat(np.cumsum(partners[part]) - partners[part], partners[part])
            )
            where = np.searchsorted(
                keys, Xt.indices[A].astype(np.int64) * width + Xt.indices[B]
            )
            product = (Xt.data[A] * Xt.data[B]).astype(dtype, copy=False)
            S = sp.csr_matrix((product, (where, row_of[A])), shape=(last - first, n))
            del A, B, where, product
            sums = (S @ weights).T
            for column, target in zip(sums, values):
                target[first:last] += column
    return values


def _dot(a, b):
    """``a · b`` of two flat vectors (one pass, no temporary, no BLAS call)."""
    return np.einsum("i,i->", a, b)


class ConjugateGradientCurvature(CurvatureInverse):
    """The exact ``M`` of a linear model, ``M⁻¹`` applied by preconditioned CG.

    See the module docstring for what is stored. Build it with :meth:`from_rows`.

    Parameters
    ----------
    n_outputs, width : int
        Shape of the parameter matrix (flattened row by row).
    pairs : list of (int, int)
        The output pairs ``(a, b)``, ``a ≤ b``, whose blocks are stored.
    values : ndarray
        ``(n_pairs, width, width)`` (dense) or ``(n_pairs, nnz)`` over ``pattern``.
    pattern : (indptr, indices) or None
        Upper-triangular CSR pattern shared by the sparse blocks; ``None``: dense.
    prior : ndarray of shape (n_params,)
        The damping diagonal added to ``M``.
    null : ndarray of shape (n_params, r)
        Extra low-rank term ``null @ null.T`` of ``M`` (flat directions given a
        curvature, see :meth:`~sklearn_ssse._maths.ModelMaths.null_directions`).
    rtol : float, default=1e-2
        Relative preconditioned residual at which CG stops. The step is then
        within about 1 % of the exact solve (0.1 % at 1e-3), far below the
        Newton step's own distance to the refit: on 3 000 × 392 images, 10
        classes, a half-class request lands at 0.141 from the refit with 1e-2
        (17 products with :class:`RowCurvature`'s preconditioner) and 0.140 with
        the exact solve (1e-3: 30 products).
    max_iter : int, default=500
        CG iterations at most.
    gram_values : ndarray or None, default=None
        The certificate's Gram ``G = Σ_i C w_i x̃_i x̃_iᵀ`` over the rows not
        forgotten yet, in the layout of one block of ``values`` (``(width,
        width)`` dense, ``(nnz,)`` over ``pattern``): downdated with the
        curvature (:meth:`downdated` with ``gram_weights``), read by
        :meth:`gram_quadratics`.
    """

    # Accepts ``downdated(rows=(X̃_S, V_S))``: the engine passes rows, not factors
    # (``downdates_rows`` is True).
    downdate_by = "rows"

    def __init__(
        self,
        n_outputs,
        width,
        pairs,
        values,
        pattern,
        prior,
        null,
        rtol=1e-2,
        max_iter=500,
        gram_values=None,
    ):
        self.n_outputs = int(n_outputs)
        self.width = int(width)
        self.pairs = [tuple(map(int, p)) for p in pairs]
        self.values = values
        self.pattern = pattern
        self.gram_values = gram_values
        self.prior = prior
        self.null = null
        self.rtol = float(rtol)
        self.max_iter = int(max_iter)
        self._diagonal_at = None
        if pattern is not None:  # in an upper-triangular CSR, a row starts there
            indptr, indices = pattern
            starts = indptr[:-1]
            first = indices[np.minimum(starts, max(len(indices) - 1, 0))]
            has = (starts < indptr[1:]) & (first == np.arange(self.width))
            self._diagonal_at = np.where(has, starts, -1)
        self._preconditioner = self._make_preconditioner()

    # -- capabilities ------------------------------------------------------------------
    @property
    def couples_outputs(self):
        """Whether the blocks between different outputs are kept (``"cg"``)."""
        return self.n_outputs == 1 or any(a != b for a, b in self.pairs)

    @property
    def structure(self):
        """``"cg"``, or ``"cg-class"`` when the blocks between classes were dropped
        (a binary model's one block is both: ``"cg"``)."""
        return "cg" if self.couples_outputs else "cg-class"

    @property
    def exact(self):
        """Whether ``M`` is stored whole (``False`` for ``"cg-class"``)."""
        return self.couples_outputs

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_rows(
        cls,
        Xt,
        V,
        prior_fn,
        null,
        couple_outputs=True,
        row_chunk=None,
        augment=None,
        gram_weights=None,
        **kwargs,
    ):
        """Build from the augmented training rows and their weights.

        Parameters
        ----------
        Xt : {ndarray, sparse matrix} of shape (n, width)
            ``X̃`` (see :func:`augment_rows`).
        V : callable or ndarray of shape (n, n_outputs, n_outputs)
            The per-row ``V_i`` (all factors included: ``C``, the sample weight),
            or a callable ``V(rows)`` giving them for a slice of rows (dense data
            is processed in chunks of rows).
        prior_fn : callable
            ``prior_fn(data_diagonal) -> (prior, null_scale)``: the damping
            diagonal and the scale of the null term, from the data term's diagonal.
        null : ndarray of shape (n_params, r)
            Unit flat directions (scaled by ``null_scale``).
        couple_outputs : bool or callable, default=True
            Whether the blocks between different outputs are kept, or a callable
            ``couple_outputs(pattern_nnz) -> bool`` deciding it from the number of
            stored entries per pair block (``nnz(triu(X̃ᵀX̃))`` for sparse rows,
            ``width²`` for dense), before any pair's values are computed.
        row_chunk : int or None
            Rows per chunk for dense data (all at once when ``None``).
        augment : callable or None
            Applied to ``Xt`` (sparse) or to each chunk of its rows (dense) first,
            e.g. to append the intercept column without copying all of ``X``.
        gram_weights : ndarray of shape (n,) or None
            ``C w_i`` per row: with coupled outputs (the exact Hessian), the
            certificate's Gram ``G = Σ_i C w_i x̃_i x̃_iᵀ`` is kept too, over the
            same pattern (``gram_values``; :meth:`gram_quadratics`), computed in
            the same pass as the blocks.
        **kwargs
            ``rtol``, ``max_iter``.
        """
        augment = augment or (lambda rows: rows)
        n = Xt.shape[0]
        width = augment(Xt[:1]).shape[1]
        get_v = V if callable(V) else (lambda rows: V[rows])
        n_outputs = get_v(slice(0, 1)).shape[1]
        dtype = Xt.dtype
        decide = couple_outputs if callable(couple_outputs) else None
        if sp.issparse(Xt):
            Xt = sp.csr_matrix(augment(Xt))
            binary = Xt.copy()
            binary.data[:] = 1
            pattern = _upper_gram(binary, np.ones(n, dtype=dtype))
            indptr, indices = pattern.indptr, pattern.indices
            if decide is not None:
                couple_outputs = bool(decide(len(indices)))
            pairs = _output_pairs(n_outputs, couple_outputs)
            keep_gram = gram_weights is not None and bool(couple_outputs)
            a_of, b_of = np.array(pairs, dtype=np.intp).reshape(-1, 2).T
            columns = get_v(slice(0, n))[:, a_of, b_of]
            if keep_gram:
                columns = np.column_stack([columns, gram_weights])
            columns = np.ascontiguousarray(columns, dtype=dtype)
            # The Gram in its own array: it outlives the fit's pair values.
            values = np.zeros((len(pairs), len(indices)), dtype=dtype)
            gram = np.zeros(len(indices), dtype=dtype) if keep_gram else None
            targets = [*values, gram] if keep_gram else list(values)
            if columns.shape[1] >= PAIRS_BY_CONTRIBUTIONS:
                _pair_values(Xt, columns, indptr, indices, dtype, out=targets)
            else:
                for p, target in enumerate(targets):
                    W = _upper_gram(Xt, columns[:, p])
                    if np.array_equal(W.indptr, indptr):  # same pattern: no lookup
                        target[:] = W.data
                        continue
                    rows = np.repeat(np.arange(width), np.diff(W.indptr))
                    target[
                        _pattern_positions(indptr, indices, width, rows, W.indices)
                    ] = W.data
            pattern = (indptr, indices)
        else:
            if decide is not None:
                couple_outputs = bool(decide(width * width))
            pairs = _output_pairs(n_outputs, couple_outputs)
            keep_gram = gram_weights is not None and bool(couple_outputs)
            pattern = None
            values = np.zeros((len(pairs), width, width), dtype=dtype)
            gram = np.zeros((width, width), dtype=dtype) if keep_gram else None
            step = n if row_chunk is None else max(int(row_chunk), 1)
            for start in range(0, n, step):
                rows = slice(start, min(start + step, n))
                Xc, Vc = augment(Xt[rows]), get_v(rows)
                for p, (a, b) in enumerate(pairs):
                    values[p] += (Xc.T * Vc[:, a, b]) @ Xc
                if keep_gram:
                    gram += (Xc.T * gram_weights[rows].astype(dtype)) @ Xc
        diagonal = cls._data_diagonal(values, pattern, pairs, n_outputs, width)
        prior, null_scale = prior_fn(diagonal)
        null = np.asarray(null, dtype=dtype) * np.sqrt(null_scale).astype(dtype)
        return cls(
            n_outputs,
            width,
            pairs,
            values,
            pattern,
            np.asarray(prior, dtype=dtype),
            null,
            gram_values=gram,
            **kwargs,
        )

    @staticmethod
    def _data_diagonal(values, pattern, pairs, n_outputs, width, diagonal_at=None):
        """Diagonal of the data term (the blocks ``G_aa``), flat."""
        out = np.zeros((n_outputs, width), dtype=values.dtype)
        if pattern is not None and diagonal_at is None:
            indptr, indices = pattern
            starts = indptr[:-1]
            first = indices[np.minimum(starts, max(len(indices) - 1, 0))]
            has = (starts < indptr[1:]) & (first == np.arange(width))
            diagonal_at = np.where(has, starts, -1)
        for p, (a, b) in enumerate(pairs):
            if a != b:
                continue
            if pattern is None:
                out[a] = np.diagonal(values[p])
            else:
                on = diagonal_at >= 0
                out[a, on] = values[p, diagonal_at[on]]
        return out.ravel()

    @classmethod
    def estimate_nbytes(
        cls,
        n_params,
        dtype,
        *,
        n_outputs=1,
        pattern_nnz=None,
        couple_outputs=True,
        gram=False,
    ):
        """Bytes stored for ``n_params = n_outputs × width`` coordinates.

        ``pattern_nnz``: entries of ``triu(X̃ᵀX̃)`` for sparse data (an upper
        bound such as ``Σ_i q_i (q_i + 1) / 2``, ``q_i`` the non-zeros of row
        ``i``, will do); ``None``: dense data. ``gram``: the certificate's Gram
        is kept too (one more block of values).
        """
        itemsize = np.dtype(dtype).itemsize
        width = int(n_params) // int(n_outputs)
        n_pairs = len(_output_pairs(n_outputs, couple_outputs)) + int(bool(gram))
        vectors = 4 * n_outputs * width * itemsize  # prior, diagonal, CG's vectors
        if pattern_nnz is None:  # the pair blocks and each output's factor
            return int((n_pairs + n_outputs) * width * width * itemsize + vectors)
        nnz = min(int(pattern_nnz), width * (width + 1) // 2)
        return int(n_pairs * nnz * itemsize + nnz * 4 + 8 * width + vectors)

    # -- interface -------------------------------------------------------------------
    @property
    def n_params(self):
        return self.n_outputs * self.width

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def nbytes(self):
        total = self.values.nbytes + self.prior.nbytes + self.null.nbytes
        if getattr(self, "gram_values", None) is not None:
            total += self.gram_values.nbytes
        if self.pattern is not None:
            total += sum(a.nbytes for a in self.pattern)
        if isinstance(self._preconditioner, list):
            total += sum(f[0].nbytes for f in self._preconditioner)
        else:
            total += self._preconditioner.nbytes
        return int(total)

    @property
    def product_cost(self):
        """Multiply-adds of one :meth:`matvec` (a request makes a dozen or so)."""
        columns = sum(1 if a == b else 2 for a, b in self.pairs)
        if self.pattern is None:  # a dense block times one or two columns
            return int(columns * self.width * self.width)
        return int(2 * columns * len(self.pattern[1]))  # U and Uᵀ of each block

    def _block(self, p):
        if self.pattern is None:
            return self.values[p]
        indptr, indices = self.pattern
        w = self.width
        return sp.csr_matrix((self.values[p], indices, indptr), shape=(w, w))

    def matvec(self, vector):
        """``M @ vector``: the stored matrix itself, exactly."""
        x = np.asarray(vector, dtype=self.dtype).reshape(self.n_outputs, self.width)
        out = (self.prior * x.ravel()).reshape(self.n_outputs, self.width)
        for p, (a, b) in enumerate(self.pairs):
            G = self._block(p)
            both = np.stack([x[b], x[a]], axis=1) if a != b else x[b][:, None]
            if self.pattern is None:
                product = G @ both
            else:  # G = U + Uᵀ − diag(U) from its upper triangle U
                on = self._diagonal_at >= 0
                diagonal = np.zeros(self.width, dtype=self.dtype)
                diagonal[on] = self.values[p, self._diagonal_at[on]]
                product = G @ both + G.T @ both - diagonal[:, None] * both
            out[a] += product[:, 0]
            if a != b:
                out[b] += product[:, 1]
        out = out.ravel()
        if self.null.shape[1]:
            out += self.null @ (self.null.T @ x.ravel())
        return out

    def data_term_diagonal(self):
        """The diagonal of ``M``'s data term ``Σ_i V_i ⊗ x̃_i x̃_iᵀ``, from the
        stored values (not ``diagonal() − prior``: in float32 a small feature's
        curvature would vanish against the damping)."""
        return self._data_diagonal(
            self.values,
            self.pattern,
            self.pairs,
            self.n_outputs,
            self.width,
            self._diagonal_at,
        )

    def diagonal(self):
        """The diagonal of ``M``."""
        data = self.data_term_diagonal()
        return self.prior + data + np.sum(self.null**2, axis=1)

    def _make_preconditioner(self):
        """Inverse of each output's diagonal block (dense) or of ``M``'s diagonal."""
        diagonal = self.prior + self._data_diagonal(
            self.values,
            self.pattern,
            self.pairs,
            self.n_outputs,
            self.width,
            self._diagonal_at,
        )
        if self.pattern is not None:
            if np.any(diagonal <= 0):
                raise np.linalg.LinAlgError("the curvature is not positive definite")
            return 1.0 / diagonal
        factors = []
        for p, (a, b) in enumerate(self.pairs):
            if a == b:
                block = self.values[p].copy()
                block[np.diag_indices_from(block)] += self.prior[
                    a * self.width : (a + 1) * self.width
                ]
                factors.append(cho_factor(block, lower=True))
        return factors

    def _precondition(self, r):
        if self.pattern is not None:
            return self._preconditioner * r
        r = r.reshape(self.n_outputs, self.width)
        return np.concatenate(
            [cho_solve(f, r[a]) for a, f in enumerate(self._preconditioner)]
        )

    def apply(self, vector):
        """``M⁻¹ @ vector`` by preconditioned conjugate gradient (to ``rtol``).

        Raises
        ------
        numpy.linalg.LinAlgError
            If ``M`` shows a direction of non-positive curvature.
        """
        b = np.asarray(vector, dtype=self.dtype)
        return self._conjugate_gradient(b, self.matvec, self._precondition)

    def _conjugate_gradient(self, b, matvec, precondition):
        """Preconditioned CG for ``matvec(x) = b`` from zero, to ``rtol``."""
        x = np.zeros_like(b)
        # Inner products by einsum (one pass, no temporary): BLAS level-1 calls
        # on a busy machine cost milliseconds of thread hand-over each. Vector
        # updates in place, through one scratch vector.
        if not np.any(b):
            return x
        r = b.copy()
        z = precondition(r)
        d = z.copy()
        scratch = np.empty_like(b)
        rz = start = _dot(r, z)
        # No closer than the dtype allows (float32: CG would run to max_iter).
        tolerance = max(self.rtol, 100 * np.finfo(self.dtype).eps) ** 2
        for _ in range(self.max_iter):
            Md = matvec(d)
            curvature = _dot(d, Md)
            if not curvature > 0:
                raise np.linalg.LinAlgError("the curvature is not positive definite")
            alpha = rz / curvature
            x += np.multiply(d, alpha, out=scratch)
            r -= np.multiply(Md, alpha, out=scratch)
            z = precondition(r)
            rz, rz_old = _dot(r, z), rz
            # The preconditioned residual ‖r‖_{P⁻¹}: smoother than ‖r‖ in CG.
            if rz <= tolerance * start:
                break
            d *= rz / rz_old
            d += z
        return x

    def prefers_factors(self, rank):
        """Never: the rows themselves are cheaper (``downdated(rows=...)``)."""
        return False

    def downdated(
        self, factors=None, grams=None, prior=None, rows=None, gram_weights=None
    ):
        """``M`` without some rows' contribution, as a new object (exact).

        Parameters
        ----------
        rows : (X̃_S, V_S)
            The augmented rows to take out, ``(k, width)`` dense or sparse, and
            their ``(k, n_outputs, n_outputs)`` weights (as in :meth:`from_rows`).
        gram_weights : ndarray of shape (k,) or None
            Their weights ``C w`` in the certificate's Gram, which is downdated
            with them; without them the new object keeps no Gram (a Gram that
            still counted the rows would give them back).
        factors, grams, prior
            Not supported by this structure (the engine passes ``rows``).

        Raises
        ------
        numpy.linalg.LinAlgError
            If the result is not positive definite, or the rows have entries the
            stored curvature never held (they were not training rows).
        """
        if rows is None or factors is not None or grams is not None:
            raise ValueError(f"{type(self).__name__} is downdated by rows=(X̃, V)")
        Xs, Vs = rows
        values = self.values.copy()
        gram = getattr(self, "gram_values", None)
        columns = [(values[p], Vs[:, a, b]) for p, (a, b) in enumerate(self.pairs)]
        if gram is not None and gram_weights is not None:
            gram = gram.copy()
            columns.append((gram, np.asarray(gram_weights)))
        else:
            gram = None
        if self.pattern is None:
            Xs = Xs.toarray() if sp.issparse(Xs) else np.asarray(Xs, self.dtype)
            for target, v in columns:
                target -= ((Xs.T * v.astype(target.dtype)) @ Xs).astype(target.dtype)
        else:
            indptr, indices = self.pattern
            Xs = sp.csr_matrix(Xs, dtype=self.dtype)
            for target, v in columns:
                W = _upper_gram(Xs, v.astype(self.dtype))
                W.eliminate_zeros()
                rws = np.repeat(np.arange(self.width), np.diff(W.indptr))
                where = _pattern_positions(indptr, indices, self.width, rws, W.indices)
                if np.any(where < 0):
                    raise np.linalg.LinAlgError(
                        "the rows to forget hold feature pairs that no training row "
                        "had: they were not part of the fit"
                    )
                target[where] -= W.data.astype(target.dtype)
        return type(self)(
            self.n_outputs,
            self.width,
            self.pairs,
            values,
            self.pattern,
            self.prior,
            self.null,
            rtol=self.rtol,
            max_iter=self.max_iter,
            gram_values=gram,
        )

    def gram_quadratics(self, *matrices, removed=None):
        """``√tr(A G Aᵀ)`` for each ``A`` (``(n_outputs, width)``), ``G`` the
        certificate's Gram of the rows not forgotten yet, in one pass over its
        stored values.

        ``removed`` (rows ``Y_S`` still counted in ``G``) is subtracted:
        ``√tr(A (G − Y_SᵀY_S) Aᵀ)``. ``None`` when the Gram is not kept
        (``"cg-class"``, no certificate, an older pickle).
        """
        gram = getattr(self, "gram_values", None)
        if gram is None:
            return None
        Z = np.concatenate(
            [np.asarray(A, dtype=np.float64).reshape(-1, self.width) for A in matrices]
        ).T  # (width, Σ n_outputs)
        # The product in the Gram's dtype (no float64 copy of it per request),
        # the sums in float64.
        if self.pattern is None:
            GZ = gram @ Z.astype(gram.dtype)
            per_column = np.einsum("jc,jc->c", Z, GZ, dtype=np.float64)
        else:
            indptr, indices = self.pattern
            upper = sp.csr_matrix(
                (gram, indices, indptr), shape=(self.width, self.width)
            )
            # zᵀGz = 2 zᵀUz − Σ_j G_jj z_j² for the upper triangle U (with G_jj)
            on = self._diagonal_at >= 0
            diagonal = np.zeros(self.width)
            diagonal[on] = gram[self._diagonal_at[on]]
            UZ = upper @ np.ascontiguousarray(Z, dtype=gram.dtype)
            per_column = 2 * np.einsum("jc,jc->c", Z, UZ, dtype=np.float64) - np.einsum(
                "j,jc->c", diagonal, Z * Z
            )
        if removed is not None and removed.shape[0]:
            YZ = np.asarray(removed @ Z, dtype=np.float64)  # (k, Σ n_outputs)
            per_column = per_column - np.einsum("ic,ic->c", YZ, YZ)
        groups = np.cumsum([np.asarray(A).size // self.width for A in matrices])
        return [
            float(np.sqrt(max(part.sum(), 0.0)))
            for part in np.split(per_column, groups[:-1])
        ]

    def to_dense(self):
        """``M⁻¹`` as one dense matrix (for tests and small models)."""
        M = np.column_stack(
            [self.matvec(e) for e in np.eye(self.n_params, dtype=self.dtype)]
        )
        return np.linalg.inv(M).astype(self.dtype, copy=False)


_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
# Rows per chunk of a dense product: about this many bytes (a core's L2 cache).
_CACHE_BYTES = 2**20
# Dense rows: each output's own block inverted as the preconditioner while the
# blocks (n_outputs × width²) store at most this many times the rows (n × width).
BLOCKS_PER_ROWS = 2


def _splitmix(z, scratch=None):
    """SplitMix64's finaliser, element-wise on ``uint64`` (wraps modulo 2⁶⁴), in
    place in ``z`` (an array) when ``scratch`` (an array of its shape) is given."""
    with np.errstate(over="ignore"):
        if scratch is None:
            z = (z ^ (z >> np.uint64(30))) * _MIX[0]
            z = (z ^ (z >> np.uint64(27))) * _MIX[1]
            return z ^ (z >> np.uint64(31))
        for shift, factor in ((30, _MIX[0]), (27, _MIX[1]), (31, None)):
            np.right_shift(z, np.uint64(shift), out=scratch)
            np.bitwise_xor(z, scratch, out=z)
            if factor is not None:
                np.multiply(z, factor, out=z)
        return z


def row_hashes(X, key=0):
    """A 64-bit hash of each row of ``X``: of its non-zero entries' columns and
    exact values (as float64 bits), independent of their order, mixed with
    ``key`` (a 64-bit integer).

    Two rows with the same non-zeros hash alike under one key, whether ``X`` is
    dense or sparse; different rows collide with probability about ``2⁻⁶⁴`` per
    pair. :class:`RowCurvature` keeps them in memory only, under a random key
    that is never pickled.
    """
    if not sp.issparse(X):
        return _dense_row_hashes(np.asarray(X), key)
    X = canonical_csr(X, drop_zeros=True)
    values = X.data.astype(np.float64) + 0.0  # -0.0 → 0.0
    with np.errstate(over="ignore"):
        keys = _splitmix(
            _splitmix((X.indices.astype(np.uint64) + np.uint64(1)) ^ np.uint64(key))
            + values.view(np.uint64)
        )
        sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(keys)])
        per_row = sums[X.indptr[1:]] - sums[X.indptr[:-1]]
        return _splitmix(per_row + np.diff(X.indptr).astype(np.uint64))


def _dense_row_hashes(X, key):
    """:func:`row_hashes` of a dense ``X`` without a sparse copy: the zeros'
    terms are masked out, chunks of rows stay in cache."""
    n, width = X.shape
    with np.errstate(over="ignore"):
        columns = _splitmix(
            (np.arange(width, dtype=np.uint64) + np.uint64(1)) ^ np.uint64(key)
        )
        out = np.empty(n, dtype=np.uint64)
        step = max(1, _CACHE_BYTES // (8 * max(width, 1)))
        keys = np.empty((min(step, n), width), dtype=np.float64)
        scratch = np.empty(keys.shape, dtype=np.uint64)
        for start in range(0, n, step):
            chunk = X[start : start + step]
            rows = len(chunk)
            values, spare = keys[:rows], scratch[:rows]
            np.add(chunk, 0.0, out=values)  # float64, -0.0 → 0.0
            zero = values == 0
            bits = values.view(np.uint64)
            bits += columns
            _splitmix(bits, spare)
            bits[zero] = 0
            total = bits.sum(axis=1, dtype=np.uint64)
            total += (width - zero.sum(axis=1)).astype(np.uint64)
            out[start : start + rows] = total
        return _splitmix(out)


def _shares_arrays(A, B):
    """Whether the sparse ``A`` holds any array of the sparse ``B``."""
    ours = [A.data, A.indices, A.indptr]
    return any(np.shares_memory(a, b) for a in ours for b in (B.data, B.indices))


def _without_rows(rows, taken):
    """``rows`` (CSR or dense) without the rows ``taken``, as new arrays.

    Sparse: one copy of each array by the kept stretches between taken rows
    (``k + 1`` slices for ``k`` rows), not scipy's row-by-row gather.
    """
    keep = np.ones(rows.shape[0], dtype=bool)
    keep[taken] = False
    if not sp.issparse(rows):
        return rows[keep]
    taken = np.flatnonzero(~keep)  # sorted, unique
    indptr = rows.indptr
    starts = np.concatenate([[0], indptr[taken + 1]])
    stops = np.concatenate([indptr[taken], [indptr[-1]]])
    data = np.concatenate([rows.data[a:b] for a, b in zip(starts, stops)])
    indices = np.concatenate([rows.indices[a:b] for a, b in zip(starts, stops)])
    lengths = np.diff(indptr)[keep]
    new_indptr = np.zeros(len(lengths) + 1, dtype=indptr.dtype)
    np.cumsum(lengths, out=new_indptr[1:])
    out = sp.csr_matrix(
        (data, indices, new_indptr), shape=(len(lengths), rows.shape[1])
    )
    out.has_sorted_indices = rows.has_sorted_indices
    return out


class RowCurvature(ConjugateGradientCurvature):
    """The exact ``M`` of a linear model kept as its training rows (opt-in).

    ``curvature_structure="cg-rows"``. **The model then contains the remaining
    training rows in the clear, and so does every pickle of it**: use it only
    where the model is kept as securely as the data set itself.

    ``M = diag(prior) + null nullᵀ + Σ_i V_i ⊗ x̃_i x̃_iᵀ`` is applied as
    ``X̃ᵀ (V ⋅ (X̃ x))``: two passes over the non-zeros of ``X̃`` per product,
    where the pair blocks ``G_ab`` of :class:`ConjugateGradientCurvature` hold
    every co-occurring pair of features (on the docstring corpus, 240 000
    non-zeros against 17 million pairs). Memory: ``nnz(X̃)`` values and column
    indices, ``n × n_pairs`` weights (and, with every pair stored, the full
    ``V_i``, ``n × n_outputs²``, for the products). A request deletes its rows, so the
    stored state is exactly that of the rows left. Rows are found by
    :func:`row_hashes` under a random key held in memory only: the hashes are
    never pickled (they would make the model a membership oracle) and are
    recomputed under a new key after unpickling.

    Parameters
    ----------
    n_outputs, width, pairs, prior, null, rtol, max_iter
        As :class:`ConjugateGradientCurvature`.
    rows : scipy.sparse.csr_matrix of shape (n, width)
        ``X̃``, the augmented training rows.
    weights : ndarray of shape (n, n_pairs)
        ``V_i[a, b]`` for each stored pair ``(a, b)``.
    hashes : (key, ndarray of shape (n,)[, order]) or None
        :func:`row_hashes` of ``rows`` under ``key`` (in memory only; computed
        at the first request when ``None``), and optionally the stable order
        that sorts them (computed when absent).
    data_diagonal : ndarray of shape (n_outputs, width) or None
        The diagonal of ``Σ_i V_i ⊗ x̃_i x̃_iᵀ`` (computed when ``None``).
    kronecker : (Q_A, Q_B, denominator) or None
        A Kronecker-factored preconditioner (:meth:`kronecker_preconditioner`),
        built at the fit and kept through requests.
    blocks : ndarray of shape (n_outputs, width, width) or None
        The inverse of each output's own block (:meth:`block_preconditioner`),
        built at the fit and kept through requests; with neither: the
        diagonal's inverse (Jacobi).
    gram_weights : ndarray of shape (n,) or None
        ``C w_i`` of each row (its weight in the objective, without the
        model's curvature): with them :meth:`gram_quadratics` gives the
        data-free certificate the exact Gram of the remaining rows.

    Notes
    -----
    **Preconditioner.** Sparse data: Jacobi (the exact diagonal, downdated with
    the rows). Dense data with ``width ≤ n``: where the blocks store at most
    twice the rows (``n_outputs · width ≤ 2 n``, :data:`BLOCKS_PER_ROWS`),
    block Jacobi over the outputs: the inverse of each output's exact block
    ``X̃ᵀ diag(V[:, a, a]) X̃ + diag(prior_a)`` (``n_outputs`` symmetric
    products of the rows at the fit, ``n_outputs · width²`` values); it drops
    only the curvature between outputs. Elsewhere ``(A ⊗ B + p̄ I)⁻¹``, ``A``
    the average ``V_i`` (weighted by ``‖x̃_i‖²``), ``B = X̃ᵀX̃`` and ``p̄`` the
    mean damping, from the eigendecompositions of ``A`` and ``B`` (K-FAC's
    factorisation). Either is only a preconditioner: CG still solves with the
    exact ``M``. On 6 000 × 784 images, 10 classes, a half-class request's CG
    takes 151 products with Jacobi, 26 with the Kronecker factors and 12 with
    the blocks (which cost 49 MB, as much as the rows, and about 2 s of one
    core at the fit). Neither is downdated: a request changes ``M`` by a few
    rows, CG converges to the new ``M``'s solution whatever the
    preconditioner, and only the number of products could grow. Since it
    still sums the forgotten rows, a preconditioner built before a request is
    never pickled or copied: the loaded (or compacted) model rebuilds it from
    the rows it holds.
    """

    structure = "cg-rows"
    keeps_rows = True
    lazy = True  # a preconditioner that may still sum forgotten rows

    def __init__(
        self,
        n_outputs,
        width,
        pairs,
        rows,
        weights,
        prior,
        null,
        rtol=1e-2,
        max_iter=500,
        hashes=None,
        data_diagonal=None,
        kronecker=None,
        blocks=None,
        gram_weights=None,
        stale_preconditioner=False,
    ):
        self.rows = sp.csr_matrix(rows) if sp.issparse(rows) else np.asarray(rows)
        self.weights = np.asarray(weights)
        self.gram_weights = (
            None if gram_weights is None else np.asarray(gram_weights, np.float64)
        )
        self._hashes = hashes  # (key, hashes), never pickled
        pairs = [tuple(map(int, p)) for p in pairs]
        if data_diagonal is None:
            data_diagonal = self._row_diagonal(
                self.rows, self.weights, pairs, n_outputs
            )
        self._data_diag = np.asarray(data_diagonal, dtype=self.rows.dtype)
        self._rows_T = self.rows.T  # a CSC view of the same arrays, made once
        self.kronecker = kronecker
        self.blocks = blocks
        # Whether the (dense-rows) preconditioner still sums rows forgotten since
        # it was built; such a preconditioner is never pickled or copied.
        self._stale_preconditioner = bool(stale_preconditioner)
        self._prepare_mixing(pairs, n_outputs)
        super().__init__(
            n_outputs,
            width,
            pairs,
            self.weights,
            None,
            prior,
            null,
            rtol=rtol,
            max_iter=max_iter,
        )

    @classmethod
    def from_rows(
        cls,
        Xt,
        V,
        prior_fn,
        null,
        couple_outputs=True,
        row_chunk=None,
        augment=None,
        **kwargs,
    ):
        """As :meth:`ConjugateGradientCurvature.from_rows`, for sparse ``Xt``."""
        augment = augment or (lambda rows: rows)
        # The rows are kept: never the caller's arrays (augmenting without an
        # intercept returns them), which the caller may change, and which
        # sum_duplicates would sort in place.
        if sp.issparse(Xt):
            rows = sp.csr_matrix(augment(Xt))
            if _shares_arrays(rows, Xt):
                rows = rows.copy()
            rows.sum_duplicates()
            rows.sort_indices()
        else:
            rows = np.ascontiguousarray(augment(Xt))
            if np.shares_memory(rows, np.asarray(Xt)):
                rows = rows.copy()
        n, width = rows.shape
        get_v = V if callable(V) else (lambda r: V[r])
        Vall = np.asarray(get_v(slice(0, n)), dtype=rows.dtype)
        n_outputs = Vall.shape[1]
        pairs = _output_pairs(n_outputs, couple_outputs)
        a, b = np.array(pairs, dtype=np.intp).T
        weights = np.ascontiguousarray(Vall[:, a, b])
        diagonal = cls._row_diagonal(rows, weights, pairs, n_outputs)
        prior, null_scale = prior_fn(diagonal.ravel())
        kronecker, blocks = cls._preconditioners(
            rows, Vall, prior, couple_outputs, row_chunk
        )
        null = np.asarray(null, dtype=rows.dtype) * np.sqrt(null_scale).astype(
            rows.dtype
        )
        key = secrets.randbits(64)  # hashed now: the first request does not wait
        return cls(
            n_outputs,
            width,
            pairs,
            rows,
            weights,
            np.asarray(prior, dtype=rows.dtype),
            null,
            hashes=(key, row_hashes(rows, key)),
            data_diagonal=diagonal,
            kronecker=kronecker,
            blocks=blocks,
            **kwargs,
        )

    @staticmethod
    def block_preconditioner(rows, own, prior, row_chunk):
        """``(n_outputs, width, width)``: the inverse of each output's own block
        ``X̃ᵀ diag(V[:, a, a]) X̃ + diag(prior_a)`` (dense ``rows``; ``own``: the
        ``(n, n_outputs)`` weights ``V_i[a, a]``), summed over chunks of
        ``row_chunk`` rows.

        Raises
        ------
        numpy.linalg.LinAlgError
            If a block is not numerically positive definite.
        """
        from scipy.linalg import get_lapack_funcs

        n, width = rows.shape
        n_outputs = own.shape[1]
        dtype = rows.dtype
        prior = np.asarray(prior, dtype=dtype).reshape(n_outputs, width)
        out = np.empty((n_outputs, width, width), dtype=dtype)
        potrf, potri = get_lapack_funcs(("potrf", "potri"), (out,))
        below = np.tril_indices(width, -1)
        for a in range(n_outputs):
            block = np.zeros((width, width), dtype=dtype)
            for start in range(0, n, row_chunk):
                chunk = slice(start, start + row_chunk)
                v = own[chunk, a]
                if np.all(v >= 0):  # Yᵀ Y, Y = √v ⋅ X̃: one symmetric product
                    Y = rows[chunk] * np.sqrt(v).astype(dtype)[:, None]
                    block += Y.T @ Y
                else:
                    block += (rows[chunk].T * v) @ rows[chunk]
            block[np.diag_indices(width)] += prior[a]
            factor, info = potrf(block, lower=True, overwrite_a=True)
            if info == 0:
                inverse, info = potri(factor, lower=True, overwrite_c=True)
            if info != 0:
                raise np.linalg.LinAlgError("the curvature is not positive definite")
            inverse[below[1], below[0]] = inverse[below]  # the upper triangle
            out[a] = inverse
        return out

    @classmethod
    def _preconditioners(cls, rows, V, prior, couple_outputs, row_chunk=None):
        """``(kronecker, blocks)``: the preconditioner of dense rows (one of the
        two, see the class Notes), or ``(None, None)`` (Jacobi)."""
        n, width = rows.shape
        n_outputs = V.shape[1]
        kronecker = blocks = None
        if not sp.issparse(rows) and width <= n:
            if n_outputs * width <= BLOCKS_PER_ROWS * n:
                own = np.einsum("iaa->ia", V)
                step = n if row_chunk is None else max(int(row_chunk), 1)
                try:
                    blocks = cls.block_preconditioner(rows, own, prior, step)
                except np.linalg.LinAlgError:  # e.g. float32 rounding: Kronecker
                    blocks = None
            if blocks is None:
                kept = V
                if not couple_outputs:
                    kept = V * np.eye(n_outputs, dtype=V.dtype)
                kronecker = cls.kronecker_preconditioner(rows, kept, prior)
        return kronecker, blocks

    def compacted(self):
        """This curvature with its preconditioner rebuilt from the rows held,
        when the one in memory still sums forgotten rows (itself otherwise)."""
        if not self._stale_preconditioner:
            return self
        clone = copy.copy(self)
        clone._rebuild_preconditioner()
        return clone

    def folded(self):
        """:meth:`compacted`: no preconditioner that sums forgotten rows."""
        return self.compacted()

    def _rebuild_preconditioner(self):
        """The preconditioner from the rows held now (after requests, the one
        built at ``fit`` still sums the forgotten rows: it is dropped from
        pickles and copies and rebuilt here, on first use)."""
        n = self.rows.shape[0]
        V = np.zeros((n, self.n_outputs, self.n_outputs), dtype=self.weights.dtype)
        for p, (a, b) in enumerate(self.pairs):
            V[:, a, b] = V[:, b, a] = self.weights[:, p]
        coupled = any(a != b for a, b in self.pairs)
        chunk = max(1, 2**24 // (8 * max(self.width, 1)))
        self.kronecker, self.blocks = self._preconditioners(
            self.rows, V, self.prior, coupled, chunk
        )
        self._stale_preconditioner = False

    @staticmethod
    def kronecker_preconditioner(rows, V, prior):
        """``(Q_A, Q_B, λ_A λ_Bᵀ + p̄)``: the eigendecompositions of ``A`` (the
        average of ``V_i`` weighted by ``‖x̃_i‖²``) and ``B = X̃ᵀX̃`` (dense
        ``rows``), whose ``(A ⊗ B + p̄ I)⁻¹`` preconditions CG (class Notes)."""
        from scipy.linalg import eigh

        norms = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
        A = np.einsum("i,iab->ab", norms, V) / max(norms.sum(), np.finfo(float).tiny)
        B = rows.T @ rows
        la, Qa = eigh(A)
        lb, Qb = eigh(B)
        denominator = np.maximum(np.outer(la, lb), 0) + np.mean(prior)
        dtype = rows.dtype
        return Qa.astype(dtype), Qb.astype(dtype), denominator.astype(dtype)

    def _row_hashes(self):
        """``(key, hashes, order)`` of the stored rows, under a random key made
        now; ``order`` sorts the hashes (stable)."""
        if self._hashes is None:
            key = secrets.randbits(64)
            self._hashes = (key, row_hashes(self.rows, key))
        if len(self._hashes) == 2:  # sorted once; requests keep the order
            key, hashes = self._hashes
            self._hashes = (key, hashes, np.argsort(hashes, kind="stable"))
        return self._hashes

    def _prepare_mixing(self, pairs, n_outputs):
        """How ``U_i = V_i Z_i`` is formed from the pair weights (:meth:`_mix`)."""
        # 0/1 maps between pairs and outputs: U[:, a] += w_ab Z[:, b] (a ≤ b), and
        # U[:, b] += w_ab Z[:, a] for a < b.
        index = np.array(pairs, dtype=np.intp).reshape(-1, 2)
        into_a = np.zeros((len(pairs), n_outputs), dtype=self.weights.dtype)
        into_b = np.zeros_like(into_a)
        into_a[np.arange(len(pairs)), index[:, 0]] = 1
        into_b[np.arange(len(pairs)), index[:, 1]] = 1
        off = into_b * (index[:, :1] != index[:, 1:])  # the diagonal pairs once
        self._pair_maps = (into_a, into_b, off)
        # Every pair stored (coupled outputs): the full V_i, gathered once here
        # (n × n_outputs² values, not pickled); the diagonal pairs only, in
        # order: elementwise; any other set of pairs: the 0/1 maps.
        self._mixing, self._full_weights = "maps", None
        full = np.full((n_outputs, n_outputs), -1, dtype=np.intp)
        full[index[:, 0], index[:, 1]] = full[index[:, 1], index[:, 0]] = np.arange(
            len(pairs)
        )
        if n_outputs > 1 and np.all(full >= 0):
            self._mixing = "full"
            self._full_weights = self.weights[:, full.ravel()].reshape(
                -1, n_outputs, n_outputs
            )
        elif np.array_equal(index, np.repeat(np.arange(n_outputs), 2).reshape(-1, 2)):
            self._mixing = "diagonal"

    def __getstate__(self):  # no hashes, no copies of what the rows give again
        state = self.__dict__.copy()
        if state.get("_stale_preconditioner"):
            # Built from rows forgotten since: rebuilt from the rows held after
            # loading, never persisted.
            state["kronecker"] = state["blocks"] = None
        for derived in (
            "_rows_T",
            "_full_weights",
            "_pair_maps",
            "_mixing",
            "_feature_major",
        ):
            state.pop(derived, None)
        state["_hashes"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.setdefault("blocks", None)  # (pickled before it existed)
        self.__dict__.setdefault("_stale_preconditioner", False)
        self.__dict__.update(state)
        self._rows_T = self.rows.T
        self._prepare_mixing(self.pairs, self.n_outputs)

    def __deepcopy__(self, memo):
        """A copy in memory keeps the hashes (a pickle does not)."""
        state = self.__getstate__()
        state["_hashes"] = self._hashes
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__setstate__(copy.deepcopy(state, memo))
        return clone

    @classmethod
    def estimate_nbytes(
        cls,
        n_params,
        dtype,
        *,
        n_outputs=1,
        nnz=0,
        n_samples=0,
        couple_outputs=True,
        dense=False,
    ):
        """Bytes stored for ``n_samples`` rows with ``nnz`` non-zeros in all
        (the intercept's column included); ``dense``: dense rows (``nnz = n ×
        width``), with its preconditioner where ``width ≤ n`` (the blocks or
        the Kronecker factors, class Notes)."""
        itemsize = np.dtype(dtype).itemsize
        width = int(n_params) // int(n_outputs)
        n_pairs = len(_output_pairs(n_outputs, couple_outputs))
        matrices = int(nnz) * (itemsize + 4) + 4 * (int(n_samples) + 1)
        # weights, hash, objective weight
        per_row = int(n_samples) * (n_pairs * itemsize + 16)
        if couple_outputs and n_outputs > 1:  # the full V_i, for the products
            per_row += int(n_samples) * n_outputs * n_outputs * itemsize
        vectors = 4 * n_outputs * width * itemsize  # prior, diagonals, preconditioner
        if dense and width <= n_samples:
            if n_outputs * width <= BLOCKS_PER_ROWS * n_samples:  # the blocks
                vectors += n_outputs * width * width * itemsize
            else:  # the Kronecker factors
                vectors += (width * width + 2 * n_outputs * n_outputs) * itemsize
                vectors += n_outputs * width * itemsize
        return int(matrices + per_row + vectors)

    @staticmethod
    def _row_diagonal(rows, weights, pairs, n_outputs):
        """``(n_outputs, width)``: the diagonal of the data term."""
        own = [p for p, (a, b) in enumerate(pairs) if a == b]
        diagonal = weighted_column_squares(rows, weights[:, own])
        return diagonal.reshape(n_outputs, rows.shape[1]).astype(rows.dtype)

    @property
    def nbytes(self):
        rows = self.rows
        if sp.issparse(rows):
            matrix = rows.data.nbytes + rows.indices.nbytes + rows.indptr.nbytes
        else:
            matrix = rows.nbytes
        return int(
            matrix
            + self._data_diag.nbytes
            + self.weights.nbytes
            + (0 if self._full_weights is None else self._full_weights.nbytes)
            + self.rows.shape[0] * 8  # the in-memory hashes
            + self.prior.nbytes
            + self.null.nbytes
            + self._preconditioner.nbytes
            + (0 if self.kronecker is None else sum(a.nbytes for a in self.kronecker))
            + (0 if self.blocks is None else self.blocks.nbytes)
            + (
                0
                if getattr(self, "gram_weights", None) is None
                else self.gram_weights.nbytes
            )
        )

    def gram_quadratics(self, *matrices, removed=None):
        """``√tr(A G Aᵀ)`` for each ``A`` (``(n_outputs, width)``), with ``G =
        Σ_i C w_i x̃_i x̃_iᵀ`` the Gram of the rows held, exactly, in one pass over
        them (float64); ``None`` without ``gram_weights`` (an older pickle).
        ``removed`` (the request's rows) is ignored: the rows held are already
        those remaining."""
        weights = getattr(self, "gram_weights", None)
        if weights is None:
            return None
        stacked = np.concatenate(
            [np.asarray(A, dtype=np.float64).reshape(-1, self.width) for A in matrices]
        )
        rows = self.rows if sp.issparse(self.rows) else np.asarray(self.rows)
        Z = np.asarray(rows @ stacked.T, dtype=np.float64)  # (n, Σ n_outputs)
        per_column = weights @ (Z * Z)
        groups = np.cumsum([np.asarray(A).size // self.width for A in matrices])
        return [
            float(np.sqrt(part.sum())) for part in np.split(per_column, groups[:-1])
        ]

    @property
    def product_cost(self):
        """Multiply-adds of one :meth:`matvec`: two passes over the rows per output."""
        rows = self.rows
        entries = rows.nnz if sp.issparse(rows) else rows.shape[0] * rows.shape[1]
        return int(2 * entries * self.n_outputs)

    def _data_term(self, x):
        """``Σ_i V_i ⊗ x̃_i x̃_iᵀ`` applied to ``x`` of shape (n_outputs, width)."""
        if sp.issparse(self.rows):
            # One pass over the non-zeros for all outputs at once, each way:
            # X̃ (x of shape (width, n_outputs), C-ordered) and X̃ᵀ U by the CSC
            # view (scipy's multi-vector kernels, no transposed copy of X̃).
            Z = self.rows @ np.ascontiguousarray(x.T)
            return (self._rows_T @ self._mix(Z)).T
        # Dense rows: both passes over a chunk of rows while it is in cache
        # (about 20 % faster than two passes over all of them, memory-bound).
        out = np.zeros((self.width, self.n_outputs), dtype=self.dtype)
        step = max(64, _CACHE_BYTES // max(self.width * self.dtype.itemsize, 1))
        for start in range(0, self.rows.shape[0], step):
            chunk = self.rows[start : start + step]
            out += chunk.T @ self._mix(chunk @ x.T, slice(start, start + step))
        return out.T

    def _mix(self, Z, rows=slice(None)):
        """``U_i = V_i Z_i`` for the stored ``rows``' ``Z`` (``x̃_i · x_a``)."""
        Z = np.asarray(Z)
        if self._mixing == "full":  # one batched product with the full V_i
            return np.einsum("iab,ib->ia", self._full_weights[rows], Z)
        weights = self.weights[rows]
        if self.n_outputs == 1 or self._mixing == "diagonal":
            return weights * Z
        into_a, into_b, off = self._pair_maps  # two small products
        U = (weights * (Z @ into_b.T)) @ into_a
        U += (weights * (Z @ into_a.T)) @ off
        return U

    def matvec(self, vector):
        """``M @ vector``: the stored matrix itself, exactly."""
        flat = np.asarray(vector, dtype=self.dtype)
        x = flat.reshape(self.n_outputs, self.width)
        out = self.prior * flat
        # The data term may come transposed: added where it lies, no copy first.
        out.reshape(self.n_outputs, self.width)[...] += self._data_term(x)
        if self.null.shape[1]:
            support, null = self._null_support()
            out[support] += null @ (null.T @ flat[support])
        return out

    def apply(self, vector):
        """``M⁻¹ @ vector`` by preconditioned CG (to ``rtol``).

        Sparse rows and several outputs: CG runs on the coordinates ordered
        feature by feature (``(width, n_outputs)``), the layout in which the
        sparse products take and give their vectors, so that no product
        transposes its input and output; the same iterations otherwise.

        Raises
        ------
        numpy.linalg.LinAlgError
            If ``M`` shows a direction of non-positive curvature.
        """
        b = np.asarray(vector, dtype=self.dtype)
        if not sp.issparse(self.rows) or self.n_outputs == 1:
            return self._conjugate_gradient(b, self.matvec, self._precondition)
        c, w = self.n_outputs, self.width
        prior, inverse_diagonal, support, null = self._by_feature()

        def matvec(v):
            out = np.multiply(prior, v)
            out += (self._rows_T @ self._mix(self.rows @ v.reshape(w, c))).ravel()
            if null is not None:
                out[support] += null @ (null.T @ v[support])
            return out

        def precondition(r):
            return inverse_diagonal * r

        x = self._conjugate_gradient(
            np.ascontiguousarray(b.reshape(c, w).T).ravel(), matvec, precondition
        )
        return np.ascontiguousarray(x.reshape(w, c).T).ravel()

    def _by_feature(self):
        """The prior, the Jacobi preconditioner and the null term's rows in the
        feature-major order of :meth:`apply` (made once per object)."""
        cached = self.__dict__.get("_feature_major")
        if cached is None:
            c, w = self.n_outputs, self.width

            def permute(flat):
                return np.ascontiguousarray(flat.reshape(c, w).T).ravel()

            support, null = (None, None)
            if self.null.shape[1]:
                support, null = self._null_support()
                support = (support % w) * c + support // w
            cached = (permute(self.prior), permute(self._preconditioner), support, null)
            self._feature_major = cached
        return cached

    def _null_support(self):
        """``(rows, null[rows])``: the rows where the null term is not zero (the
        intercepts' coordinates for a multinomial model)."""
        cached = self.__dict__.get("_null_rows")
        if cached is None:
            support = np.flatnonzero(np.any(self.null != 0, axis=1))
            cached = self._null_rows = (support, self.null[support])
        return cached

    def data_term_diagonal(self):
        """The diagonal of ``M``'s data term, as kept with the rows."""
        return self._data_diag.ravel()

    def diagonal(self):
        """The diagonal of ``M``."""
        return self.prior + self._data_diag.ravel() + np.sum(self.null**2, axis=1)

    def _make_preconditioner(self):
        diagonal = self.prior + self._data_diag.ravel()
        if np.any(diagonal <= 0):
            raise np.linalg.LinAlgError("the curvature is not positive definite")
        return 1.0 / diagonal

    def _precondition(self, r):
        if (
            self._stale_preconditioner
            and self.blocks is None
            and (self.kronecker is None)
        ):
            self._rebuild_preconditioner()  # loaded after requests
        if self.blocks is not None:  # each output's own block
            return np.matmul(self.blocks, r.reshape(self.n_outputs, -1, 1)).ravel()
        if self.kronecker is None:
            return self._preconditioner * r
        Qa, Qb, denominator = self.kronecker
        T = Qa.T @ r.reshape(self.n_outputs, self.width) @ Qb
        return (Qa @ (T / denominator) @ Qb.T).ravel()

    def _block(self, p):
        raise NotImplementedError

    def downdated(
        self, factors=None, grams=None, prior=None, rows=None, gram_weights=None
    ):
        """``M`` without some training rows, as a new object: the rows are
        deleted from the stored ones (exact; the certificate's Gram is that of
        the rows held, so ``gram_weights`` is not needed).

        Parameters
        ----------
        rows : (X̃_S, V_S)
            The augmented rows to take out and their ``(k, n_outputs,
            n_outputs)`` weights. Each must equal a stored row (its non-zeros
            exactly, its weights to a relative ``1e-4``); a stored row is taken
            out at most once.
        factors, grams, prior
            Not supported (the engine passes ``rows``).

        Raises
        ------
        numpy.linalg.LinAlgError
            If a row is not one of the stored rows (it was not part of the fit,
            or was forgotten already, or its weights differ from the fit's), or
            the result is not positive definite.
        """
        if rows is None or factors is not None or grams is not None:
            raise ValueError(f"{type(self).__name__} is downdated by rows=(X̃, V)")
        Xs, Vs = rows
        key, stored, order = self._row_hashes()
        Xs = sp.csr_matrix(Xs, dtype=self.dtype) if sp.issparse(Xs) else Xs
        wanted = row_hashes(Xs.astype(self.dtype, copy=False), key)
        ranked = stored[order]
        # The j-th copy of a repeated row in the request takes the j-th stored copy.
        by_hash = np.argsort(wanted, kind="stable")
        sorted_wanted = wanted[by_hash]
        first = np.searchsorted(sorted_wanted, sorted_wanted, side="left")
        occurrence = np.empty(len(wanted), dtype=np.intp)
        occurrence[by_hash] = np.arange(len(wanted)) - first
        where = np.searchsorted(ranked, wanted, side="left") + occurrence
        inside = where < len(ranked)
        found = inside.copy()
        found[inside] = ranked[where[inside]] == wanted[inside]
        if not np.all(found):
            raise np.linalg.LinAlgError(
                f"{int(np.sum(~found))} of the rows to forget are not among the "
                "stored training rows: they were not part of the fit (or were "
                "forgotten already)"
            )
        taken = order[where]
        a, b = np.array(self.pairs, dtype=np.intp).T
        given = np.asarray(Vs, dtype=np.float64)[:, a, b]
        held = self.weights[taken].astype(np.float64)
        scale = np.maximum(np.abs(held).max(axis=1, initial=0.0), 1e-30)
        if np.any(np.abs(given - held).max(axis=1, initial=0.0) > 1e-4 * scale):
            raise np.linalg.LinAlgError(
                "the rows to forget carry other curvature weights than at the fit "
                "(another label, sample weight or class weight): they were not "
                "part of the fit as given"
            )
        keep = np.ones(self.rows.shape[0], dtype=bool)
        keep[taken] = False
        # The request's rows are the stored ones (their hashes matched): their
        # diagonal from them, with the weights stored at the fit.
        removed = self._row_diagonal(
            Xs.astype(self.dtype, copy=False),
            self.weights[taken],
            self.pairs,
            self.n_outputs,
        )
        # Rounding may leave a column without rows slightly off zero.
        data_diagonal = np.maximum(self._data_diag - removed, 0)
        # The hashes' sorted order without the taken rows, renumbered: no sort.
        renumbered = np.cumsum(keep) - 1
        return type(self)(
            self.n_outputs,
            self.width,
            self.pairs,
            _without_rows(self.rows, taken),
            self.weights[keep],
            self.prior,
            self.null,
            rtol=self.rtol,
            max_iter=self.max_iter,
            hashes=(key, stored[keep], renumbered[order[keep[order]]]),
            data_diagonal=data_diagonal,
            kronecker=self.kronecker,
            blocks=self.blocks,
            stale_preconditioner=self._stale_preconditioner
            or self.kronecker is not None
            or self.blocks is not None,
            gram_weights=(
                None
                if getattr(self, "gram_weights", None) is None
                else self.gram_weights[keep]
            ),
        )
