"""Linear algebra of the inverse curvature: accumulate, factor, invert, downdate.

Every function here works on one symmetric positive definite block and knows nothing
about models. The estimators only ever call :class:`~sklearn_ssse._curvature.
BlockDiagonalInverse`, which applies these functions block by block.
"""

import numpy as np
import scipy.sparse as sp
from scipy.linalg import get_blas_funcs, get_lapack_funcs

from . import _array_api

try:  # scipy's own kernel of ``csr + dense``: adds a CSR matrix into a C array
    from scipy.sparse._sparsetools import csr_todense as _csr_add_into
except ImportError:  # pragma: no cover - a scipy without it: numpy's indexing
    _csr_add_into = None

__all__ = [
    "accumulate_gram",
    "add_sparse_into",
    "scale_rows",
    "as_dense",
    "canonical_csr",
    "weighted_column_squares",
    "symmetrize_from_lower",
    "spd_inverse",
    "woodbury_downdate",
    "woodbury_downdate_apply",
    "symmetric_rank_update",
    "gram_downdate",
    "projected_downdate",
    "sherman_morrison_inverse",
]


def symmetrize_from_lower(A, panel=256):
    """Copy the lower triangle of the C-ordered square ``A`` onto its upper one.

    In place, one panel of columns at a time, so the temporary memory stays
    ``O(d · panel)`` instead of the ``O(d²)`` of index arrays.
    """
    d = A.shape[0]
    for start in range(0, d, panel):
        stop = min(start + panel, d)
        A[:start, start:stop] = A[start:stop, :start].T
        square = A[start:stop, start:stop]
        # panel² temporaries: faster than indexing with triu_indices
        square[...] = np.tril(square) + np.tril(square, -1).T
    return A


# Below this size a product's temporary costs less than switching between
# numpy's and scipy's OpenBLAS thread pools for an in-place scipy BLAS call.
IN_PLACE_MIN_BYTES = 4 * 2**20


def accumulate_gram(out, A, B, v=None, same=False, in_place=None):
    """``out += Aᵀ diag(v) B`` over a chunk of rows, in place where BLAS allows.

    With ``same`` (``A`` is ``B``) and ``v ≥ 0`` (or ``v=None``: no weights) it is
    a SYRK that fills only the lower triangle of ``out``; finish with
    :func:`symmetrize_from_lower`. ``A`` and ``B`` may be dense or sparse. When
    ``out`` is large and C-contiguous the product is written straight into it by
    scipy's BLAS (no ``d × d`` temporary); otherwise numpy computes it aside and
    adds it (numpy's ``A.T @ A`` is itself a SYRK). ``in_place=True`` (a build)
    writes in place whenever the temporary would outweigh the chunk ``A``
    (wide, short chunks), and uses numpy's BLAS otherwise: between numpy's own
    BLAS calls on the same chunks (the probabilities, the class sums), a call
    into scipy's OpenBLAS waits for the other pool's spinning threads, measured
    at up to 0.1 s a call on a busy two-core machine against 2 ms of work. A
    float32 chunk added into a float64 ``out`` is multiplied in float32 (the
    BLAS-3 floor) and summed in float64. When
    both are sparse the product is a sparse one (SpGEMM) whose
    stored entries alone are added to ``out`` (:func:`add_sparse_into`): its cost
    follows the non-zeros, and nothing of ``out``'s size is allocated.
    """
    syrk = same and (v is None or np.all(v >= 0))
    if v is not None:
        if syrk:
            A = B = (
                A.multiply(np.sqrt(v)[:, None])
                if sp.issparse(A)
                else (A * np.sqrt(v)[:, None])
            )
        else:
            B = B.multiply(v[:, None]) if sp.issparse(B) else B * v[:, None]
    if sp.issparse(A) or sp.issparse(B):
        if sp.issparse(A) and sp.issparse(B):
            # SpGEMM, then only the product's stored entries touch ``out``.
            add_sparse_into(out, sp.csr_matrix(A.T) @ sp.csr_matrix(B), unique=True)
        else:
            out += as_dense(A.T @ B)
        return
    if in_place is None:
        small = out.nbytes <= IN_PLACE_MIN_BYTES
    else:
        small = not in_place or out.nbytes <= A.nbytes + B.nbytes
    if small or not (out.flags.c_contiguous and out.dtype == A.dtype == B.dtype):
        out += A.T @ B
        return
    # BLAS sees out.T, Fortran-ordered: its upper triangle is out's lower one.
    if syrk:
        result = get_blas_funcs("syrk", (A,))(
            1.0, A.T, beta=1.0, c=out.T, trans=0, lower=0, overwrite_c=1
        )
    else:
        result = get_blas_funcs("gemm", (B,))(
            1.0, B.T, A.T, beta=1.0, c=out.T, trans_b=1, overwrite_c=1
        )
    if not np.shares_memory(result, out):
        out[...] = result.T


def add_sparse_into(out, P, offset=(0, 0), unique=False):
    """``out[i:i+a, j:j+b] += P`` for a sparse ``P``, in ``O(nnz(P))``.

    No dense temporary: only the stored entries of ``P`` touch ``out``.

    Parameters
    ----------
    out : ndarray of shape (n, m)
        Dense target, updated in place (fastest when C-contiguous).
    P : sparse matrix of shape (a, b)
        The term to add.
    offset : (int, int), default=(0, 0)
        ``(i, j)``: where ``P``'s first entry goes in ``out``.
    unique : bool, default=False
        Whether ``P`` is known to hold no duplicate entries (true of scipy's
        sparse products); otherwise they are summed first.

    Returns
    -------
    out : ndarray
    """
    P = sp.csr_matrix(P)
    i, j = (int(k) for k in offset)
    if P.nnz == 0:
        return out
    if not unique:
        P.sum_duplicates()  # a repeated index would add only once below
    data = P.data.astype(out.dtype, copy=False)
    columns = P.indices + np.asarray(j, dtype=P.indices.dtype) if j else P.indices
    if _csr_add_into is not None and out.flags.c_contiguous and out.flags.writeable:
        # Whole rows of a C array are C-contiguous: one pass in C, row by row
        # (the kernel of scipy's ``csr + dense``, which runs it on a copy).
        rows = out[i : i + P.shape[0]]
        _csr_add_into(P.shape[0], out.shape[1], P.indptr, columns, data, rows)
        return out
    rows = np.repeat(np.arange(i, i + P.shape[0], dtype=np.intp), np.diff(P.indptr))
    out[rows, columns] += data
    return out


def scale_rows(A, scale):
    """``diag(scale) @ A`` for a CSR matrix ``A``, as a new CSR matrix in ``O(nnz)``."""
    A = sp.csr_matrix(A)
    out = A.copy()
    out.data *= np.repeat(np.asarray(scale, dtype=A.dtype), np.diff(A.indptr))
    return out


def as_dense(matrix):
    """A dense ndarray of a sparse or dense matrix."""
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def canonical_csr(X, drop_zeros=False):
    """``X`` as CSR with sorted indices and no repeated entries (and, with
    ``drop_zeros``, no stored zeros): ``X`` itself when it already is, else a
    copy. Never modifies ``X``: scipy canonicalises in place, which on the
    caller's matrix (or one sharing its arrays) changes or corrupts it."""
    X = sp.csr_matrix(X)
    if X.has_canonical_format and not (drop_zeros and not np.all(X.data)):
        return X
    X = X.copy()
    X.sum_duplicates()
    if drop_zeros:
        X.eliminate_zeros()
    return X


def weighted_column_squares(rows, weights):
    """``out[c, j] = Σ_i weights[i, c] · rows[i, j]²`` in float64.

    One pass over the non-zeros of a sparse ``rows`` (a ``bincount`` per column
    of ``weights``, no scipy product, which costs ~0.1 ms of overhead even on
    one row), an ``einsum`` over a dense one; the input is never modified.

    Parameters
    ----------
    rows : {ndarray, sparse matrix} of shape (k, d)
    weights : ndarray of shape (k, c)

    Returns
    -------
    ndarray of shape (c, d)
    """
    weights = np.asarray(weights, dtype=np.float64)
    if not sp.issparse(rows):
        rows = np.asarray(rows, dtype=np.float64)
        return np.einsum("ic,ij,ij->cj", weights, rows, rows)
    rows = canonical_csr(rows)  # repeated entries add up first
    squares = np.square(rows.data, dtype=np.float64)
    owner = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    width = rows.shape[1]
    return np.stack(
        [
            np.bincount(rows.indices, squares * column[owner], minlength=width)
            for column in weights.T
        ]
    ).reshape(weights.shape[1], width)


def spd_inverse(M, overwrite=False):
    """Inverse of a symmetric positive definite matrix through its Cholesky factor.

    Parameters
    ----------
    M : ndarray of shape (d, d)
        Symmetric positive definite matrix (float32 or float64).
    overwrite : bool, default=False
        Whether ``M``'s memory may be reused (saves one ``d × d`` copy).

    Returns
    -------
    M_inv : ndarray of shape (d, d)
        Its inverse, symmetric, in the dtype of ``M``.

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``M`` is not positive definite.
    """
    xp, device = _array_api.namespace(M)
    if xp is not None:
        return _spd_inverse_xp(M, xp, device)
    M = np.asarray(M)
    if M.shape[0] == 0:
        return M.copy()
    if not overwrite or not M.flags.c_contiguous:
        M = np.array(M, order="C")
    potrf, potri = get_lapack_funcs(("potrf", "potri"), (M,))
    # M is symmetric: its transpose is the Fortran-ordered matrix LAPACK works on in
    # place, and LAPACK's upper triangle is M's lower one.
    factor, info = potrf(M.T, lower=False, clean=False, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"the curvature block is not positive definite (LAPACK potrf info={info})"
        )
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"inversion failed (LAPACK potri info={info})")
    return symmetrize_from_lower(np.ascontiguousarray(inverse.T))


def _spd_inverse_xp(M, xp, device):
    """:func:`spd_inverse` in any array API namespace, on the array's device.

    The standard has no triangular solve: ``M⁻¹ = L⁻ᵀ L⁻¹`` with ``L⁻¹`` from a
    general solve against the identity (PyTorch and CuPy dispatch it to the
    device's LAPACK).
    """
    d = M.shape[0]
    if d == 0:
        return xp.asarray(M, copy=True)
    L = _array_api.cholesky(M, xp)
    L_inv = xp.linalg.solve(L, xp.eye(d, dtype=M.dtype, device=device))
    return _array_api.symmetrize(L_inv.T @ L_inv)


def woodbury_downdate(M_inv, U):
    """Inverse of ``M - U @ U.T`` from the inverse of ``M``, by Woodbury's identity.

    ``(M - U Uᵀ)⁻¹ = M⁻¹ + M⁻¹U (I - Uᵀ M⁻¹ U)⁻¹ Uᵀ M⁻¹``, in ``O(d² r + r³)`` for
    ``U`` of shape ``(d, r)``; the right tool when ``r`` is small next to ``d``.

    Parameters
    ----------
    M_inv : ndarray of shape (d, d)
        Inverse of a symmetric positive definite ``M``.
    U : ndarray of shape (d, r)
        Factor of the rank-``r`` term taken out of ``M``.

    Returns
    -------
    ndarray of shape (d, d)
        The inverse of the downdated matrix (a new array).

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``M - U Uᵀ`` is not positive definite.
    """
    xp, device = _array_api.namespace(M_inv)
    if xp is not None:
        if U.shape[1] == 0:
            return xp.asarray(M_inv, copy=True)
        MU = M_inv @ U
        capacitance = xp.eye(U.shape[1], dtype=M_inv.dtype, device=device) - U.T @ MU
        L = _array_api.cholesky(_array_api.symmetrize(capacitance), xp)
        V = xp.linalg.solve(L, MU.T).T
        return M_inv + V @ V.T
    return woodbury_downdate_apply(M_inv, U)[0]


def woodbury_downdate_apply(M_inv, U, vectors=None):
    """Woodbury downdate of ``M⁻¹`` and ``M⁻¹`` applied, in one pass over ``M⁻¹``.

    The request's linear algebra at its floor: ``M⁻¹`` is read once, by one GEMM
    against ``[U, vectors]`` (which gives both ``M⁻¹U`` and ``M⁻¹ vectors``), and
    the downdated inverse is written once (:func:`symmetric_rank_update`);
    ``(M − UUᵀ)⁻¹ vectors`` then follows from ``M⁻¹ vectors`` by the same
    low-rank correction, without reading the new matrix again.

    Parameters
    ----------
    M_inv : ndarray of shape (d, d)
        Inverse of a symmetric positive definite ``M`` (not modified).
    U : ndarray of shape (d, r)
        Factor of the rank-``r`` term taken out of ``M``.
    vectors : ndarray of shape (d,) or (d, m), default=None
        Vectors to apply the old and the new inverse to.

    Returns
    -------
    new_inverse : ndarray of shape (d, d)
        The inverse of ``M − U Uᵀ`` (a new array).
    old_applied, new_applied : ndarray of the shape of ``vectors``, or None
        ``M⁻¹ vectors`` and ``(M − U Uᵀ)⁻¹ vectors``.

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``M - U Uᵀ`` is not positive definite.
    """
    if _array_api.namespace(M_inv)[0] is not None:  # another namespace: plainly
        new = woodbury_downdate(M_inv, U)
        if vectors is None:
            return new, None, None
        return new, M_inv @ vectors, new @ vectors
    dtype = M_inv.dtype
    U = np.asarray(U, dtype=dtype)
    d, r = U.shape
    if vectors is None:
        block = U
    else:
        vectors = np.asarray(vectors, dtype=dtype)
        columns = r + (1 if vectors.ndim == 1 else vectors.shape[1])
        block = np.empty((d, columns), dtype, order="F")
        block[:, :r] = U
        block[:, r:] = vectors.reshape(d, -1)
    # numpy's BLAS only on this per-request path: switching between numpy's and
    # scipy's OpenBLAS thread pools costs about a millisecond each time.
    product = _multiply(M_inv, block)
    if r == 0:
        new = M_inv.copy()
        V = np.zeros((d, 0), dtype=dtype)
    else:
        MU = product[:, :r]
        capacitance = np.eye(r, dtype=dtype) - U.T @ MU
        # capacitance = L Lᵀ (raises LinAlgError unless M − U Uᵀ is positive
        # definite); the correction M⁻¹U (L Lᵀ)⁻¹ UᵀM⁻¹ is V Vᵀ, V = M⁻¹U L⁻ᵀ.
        L = np.linalg.cholesky(capacitance)
        V = np.linalg.solve(L, MU.T).T if r > 1 else MU / L[0, 0]
        new = symmetric_rank_update(M_inv, V)
    if vectors is None:
        return new, None, None
    old_applied = product[:, r:]
    new_applied = old_applied + V @ (V.T @ block[:, r:])
    shape = vectors.shape
    return new, old_applied.reshape(shape), new_applied.reshape(shape)


# Up to this many columns, OpenBLAS's GEMV per column beats its GEMM (whose
# packing costs more than a pass over the matrix at two columns).
_GEMV_MAX_COLUMNS = 4


def _multiply(A, B):
    """``A @ B`` for a tall, thin ``B``, at the speed of one pass over ``A``."""
    if B.shape[1] > _GEMV_MAX_COLUMNS or A.shape[0] == 0:
        return A @ B
    out = np.empty((A.shape[0], B.shape[1]), dtype=np.result_type(A, B), order="F")
    for j in range(B.shape[1]):
        np.matmul(A, B[:, j], out=out[:, j])
    return out


# Above this rank the update is compute-bound: a SYRK (half the flops of the
# general product) is worth a second pass over memory.
_SYRK_MIN_RANK = 24
# Rows of the result made per step of the panel update (kept in cache while the
# product is added to the old matrix).
_PANEL_ROWS = 64


def symmetric_rank_update(A, V):
    """``A + V Vᵀ`` as a new array, ``A`` left unchanged.

    Memory-bound for a small rank: ``A`` is read once and the result written
    once. A large result is a copy of ``A`` updated in place by scipy's BLAS (a
    rank-1 ``ger`` or a ``gemm`` with ``beta=1``: numpy has no in-place product);
    a small one (below :data:`IN_PLACE_MIN_BYTES`, where switching to scipy's
    thread pool costs more than it saves) is made panel by panel of rows with
    numpy's own BLAS, each panel's product added to ``A``'s while in cache.
    Compute-bound for a large rank: ``V Vᵀ`` is one SYRK (numpy's ``V @ V.T``,
    half the flops), then ``A`` is added.
    """
    d, r = V.shape
    V = V.astype(A.dtype, copy=False)
    if r >= _SYRK_MIN_RANK or not A.flags.c_contiguous:
        out = V @ V.T
        out += A
        return out
    if A.nbytes <= IN_PLACE_MIN_BYTES:
        out = np.empty_like(A)
        if r == 1:  # numpy's matmul has no BLAS path for an outer product
            V = np.hstack([V, np.zeros_like(V)])
        VT = V.T
        for start in range(0, d, _PANEL_ROWS):
            rows = slice(start, start + _PANEL_ROWS)
            np.add(A[rows], V[rows] @ VT, out=out[rows])
        return out
    out = A.copy()
    # BLAS sees out.T, Fortran-ordered; out is symmetric either way.
    if r == 1:
        ger = get_blas_funcs("ger", (out,))
        result = ger(1.0, V[:, 0], V[:, 0], a=out.T, overwrite_a=1)
    else:
        gemm = get_blas_funcs("gemm", (out,))
        result = gemm(1.0, V, V, beta=1.0, c=out.T, trans_b=1, overwrite_c=1)
    if not np.shares_memory(result, out):  # pragma: no cover (BLAS copied)
        out[...] = result.T
    return out


def gram_downdate(M_inv, W):
    """Inverse of ``M - W`` from the inverse of ``M``, for a full-rank ``W``.

    Uses ``(M - W)⁻¹ = (I - M⁻¹W)⁻¹ M⁻¹``: one dense solve, ``O(d³)``, whatever the
    number of rows behind ``W``. The right tool when the downdate has high rank.

    Parameters
    ----------
    M_inv : ndarray of shape (d, d)
        Inverse of a symmetric positive definite ``M``.
    W : ndarray of shape (d, d)
        Symmetric positive semi-definite term taken out of ``M``.

    Returns
    -------
    ndarray of shape (d, d)
        The inverse of ``M - W`` (a new array).

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``M - W`` is singular or not positive definite.
    """
    d = M_inv.shape[0]
    xp, device = _array_api.namespace(M_inv)
    if xp is not None:
        if d == 0:
            return xp.asarray(M_inv, copy=True)
        system = xp.eye(d, dtype=M_inv.dtype, device=device) - M_inv @ W
        result = _array_api.symmetrize(xp.linalg.solve(system, M_inv))
        _array_api.cholesky(result, xp)  # raises LinAlgError unless definite
        return result
    if d == 0:
        return M_inv.copy()
    system = np.eye(d, dtype=M_inv.dtype) - M_inv @ W
    result = np.linalg.solve(system, M_inv)
    result = (result + result.T) / 2
    # A downdate that leaves an indefinite matrix would silently give nonsense:
    # the Cholesky factorisation is the check (it raises LinAlgError).
    np.linalg.cholesky(result)
    return result.astype(M_inv.dtype, copy=False)


def projected_downdate(M_inv, W, prior):
    """Inverse of ``D + max(F − W, 0)`` where ``M = D + F``: a downdate that can
    never take out more curvature than the data term ``F`` holds.

    ``D = diag(prior)`` is the damping; the data term left after removing ``W`` is
    projected onto the positive semi-definite cone (negative eigenvalues set to
    zero). For a curvature estimated from mini-batch sums, whose data term has low
    rank, the rows' own outer products ``W`` can exceed it in some directions; the
    projection removes what is there. ``O(d³)``.

    Parameters
    ----------
    M_inv : ndarray of shape (d, d)
        Inverse of ``M = diag(prior) + F``.
    W : ndarray of shape (d, d)
        Symmetric positive semi-definite term to take out of ``F``.
    prior : ndarray of shape (d,)
        Positive diagonal ``D``.

    Returns
    -------
    ndarray of shape (d, d)
    """
    xp, device = _array_api.namespace(M_inv)
    if xp is not None:
        data = xp.linalg.inv(M_inv) - W
        prior_matrix = xp.eye(data.shape[0], dtype=M_inv.dtype, device=device) * prior
        values, vectors = xp.linalg.eigh(_array_api.symmetrize(data - prior_matrix))
        kept = vectors * xp.sqrt(xp.clip(values, min=0))
        return xp.linalg.inv(kept @ kept.T + prior_matrix)
    data = np.linalg.inv(M_inv) - W
    data[np.diag_indices_from(data)] -= prior
    values, vectors = np.linalg.eigh((data + data.T) / 2)
    kept = vectors * np.sqrt(np.maximum(values, 0))
    M = kept @ kept.T
    M[np.diag_indices_from(M)] += prior
    return np.linalg.inv(M).astype(M_inv.dtype, copy=False)


def sherman_morrison_inverse(gradients, weights, damping):
    """Inverse of ``D + Σ_i w_i g_i g_iᵀ`` by the paper's rank-1 recursion.

    This is equation (7) of the SSSE paper written in scikit-learn's scaling: start
    from ``D⁻¹`` and add one outer product at a time with the
    Sherman–Morrison identity. It costs ``O(n d²)`` in level-2 BLAS and exists as a
    reference (tests, benchmarks); the estimators build the same matrix blockwise
    with level-3 BLAS.

    Parameters
    ----------
    gradients : ndarray of shape (n, d)
        One gradient ``g_i`` per row.
    weights : ndarray of shape (n,)
        Non-negative weight ``w_i`` of each outer product.
    damping : ndarray of shape (d,) or (d, d)
        The starting matrix ``D`` (the damping): its diagonal, or the whole
        positive definite matrix.

    Returns
    -------
    ndarray of shape (d, d)
        The inverse matrix.
    """
    gradients = np.asarray(gradients, dtype=np.float64)
    damping = np.asarray(damping, dtype=np.float64)
    inverse = np.diag(1.0 / damping) if damping.ndim == 1 else np.linalg.inv(damping)
    for g, w in zip(gradients, np.asarray(weights, dtype=np.float64)):
        Fg = inverse @ g
        inverse -= np.outer(Fg, Fg) * (w / (1.0 + w * (g @ Fg)))
    return inverse


# Up to this many rows a request's gradient is expressed in their span (a pass
# over the inverse per column is then the cost; beyond, one more column is noise).
SPAN_MAX_ROWS = 4


def row_span(B, U, vector, rtol=1e-10):
    """``(s, a, ρ)`` with ``U = diag(s) B`` and ``vector = Bᵀa + ρ``, or ``None``.

    A binary logistic request's curvature factor is each row scaled
    (``U_i = √(C w_i p_i(1 − p_i)) x̃_i``) and its gradient a combination of the
    same rows whenever nothing else enters it (after the first request the
    carried residual is zero): ``M⁻¹[U, g]`` then needs ``M⁻¹B`` alone. Checked,
    not assumed: ``None`` unless ``U`` is ``diag(s) B`` to ``rtol`` and the
    least-squares residual ``ρ`` of ``vector`` is below ``rtol · ‖vector‖``
    (``ρ`` is returned so that the caller can account for it exactly).

    Parameters
    ----------
    B : ndarray of shape (k, d)
        The rows.
    U : ndarray of shape (k, d)
        The curvature factor, one row per row of ``B``.
    vector : ndarray of shape (d,)
    rtol : float, default=1e-10

    Returns
    -------
    (s, a, residual) or None
    """
    k = B.shape[0]
    if k == 0 or k > SPAN_MAX_ROWS or U.shape != B.shape:
        return None
    B = np.asarray(B, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    vector = np.asarray(vector, dtype=np.float64)
    if k == 1:  # plain dot products: this runs on every one-row request
        b, u = B[0], U[0]
        norm = float(b @ b)
        if not norm > 0:
            return None
        s = np.array([(u @ b) / norm])
        misfit = u - s[0] * b
        if float(misfit @ misfit) > rtol**2 * max(float(u @ u), 1e-300):
            return None
        a = np.array([(b @ vector) / norm])
        residual = vector - a[0] * b
    else:
        norms = np.einsum("ij,ij->i", B, B)
        if not np.all(norms > 0):
            return None
        s = np.einsum("ij,ij->i", U, B) / norms
        misfit = np.linalg.norm(U - s[:, None] * B)
        if misfit > rtol * max(np.linalg.norm(U), 1e-300):
            return None
        try:  # normal equations: k ≤ 4, and the residual is checked below
            a = np.linalg.solve(B @ B.T, B @ vector)
        except np.linalg.LinAlgError:  # rows linearly dependent
            return None
        residual = vector - B.T @ a
    if float(residual @ residual) > rtol**2 * float(vector @ vector):
        return None
    return s, a, residual


def _triangular_inverses(L):
    """Inverses of the lower triangular ``L[o]`` (k × k each).

    LAPACK's ``trtri`` per output: ``k³/3`` flops each, against about ``3k³`` for
    ``np.linalg.inv`` (a general LU; 4× slower measured at k = 100). The loop is
    over outputs but each call is ``O(k³)`` on a small matrix, nothing of size P.
    """
    trtri = get_lapack_funcs("trtri", (L[0],))
    out = np.empty_like(L)
    for o in range(L.shape[0]):
        inverse, info = trtri(L[o], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"singular Cholesky factor (trtri info={info})")
        out[o] = inverse
    return np.tril(out)


def woodbury_step(product, U, vector, span=None):
    """Woodbury's columns of a downdate, and the vector applied, from one product.

    With ``M⁻¹`` the stored inverse and ``U`` (``d × k``) the rows to remove,
    ``(M − U Uᵀ)⁻¹ = M⁻¹ + W Wᵀ`` with ``W = M⁻¹U L⁻ᵀ`` and ``L Lᵀ = I − UᵀM⁻¹U``.
    Shared by the single block (:mod:`~sklearn_ssse._curvature_lowrank`) and the
    stack of outputs (:mod:`~sklearn_ssse._stacked`): arrays may carry a leading
    axis of outputs.

    Parameters
    ----------
    product : ndarray of shape ([n,] d, c)
        ``M⁻¹ [U, vector]`` (``c = k + 1``; ``c = k`` when ``vector`` is None),
        or ``M⁻¹ B`` with ``span``.
    U : ndarray of shape ([n,] d, k)
    vector : ndarray of shape ([n,] d) or None
    span : (B, s, a) or None
        ``U = B diag(s)`` and ``vector = B a`` (``s``, ``a`` of shape ``([n,] k)``):
        ``product`` is then ``M⁻¹ B``.

    Returns
    -------
    W : ndarray of shape ([n,] d, k)
    old_applied, new_applied : ndarray of shape ([n,] d) or None
        ``M⁻¹ vector`` and ``(M − U Uᵀ)⁻¹ vector``.

    Raises
    ------
    numpy.linalg.LinAlgError
        Unless every ``M − U Uᵀ`` is positive definite.
    """
    stacked = product.ndim == 3
    if not stacked:
        product, U = product[None], U[None]
        vector = None if vector is None else vector[None]
        if span is not None:
            span = (span[0], np.asarray(span[1])[None], np.asarray(span[2])[None])
    dtype = product.dtype
    n, d, k = U.shape
    old_applied = new_applied = None
    if span is not None:  # M⁻¹U = (M⁻¹B) diag(s), M⁻¹v = (M⁻¹B) a
        old_applied = np.einsum("opk,ok->op", product, span[2].astype(dtype))
        MU = product * span[1].astype(dtype)[:, None, :]
    else:
        MU = product[:, :, :k]
        if vector is not None:
            old_applied = product[:, :, k]
    if k == 1:  # a 1 × 1 capacitance per output: its square root, no LAPACK call
        capacitance = 1 - np.einsum("opk,opk->o", U, MU)
        if not np.all(capacitance > 0):
            raise np.linalg.LinAlgError("the downdated matrix is not positive definite")
        W = MU / np.sqrt(capacitance)[:, None, None]
    elif k:
        capacitance = -np.matmul(U.transpose(0, 2, 1), MU)
        diagonal = np.arange(k)
        capacitance[:, diagonal, diagonal] += 1
        L = np.linalg.cholesky(capacitance)  # LinAlgError unless definite
        # L⁻¹ then one GEMM: faster than a solve with d right-hand sides.
        W = np.matmul(MU, _triangular_inverses(L).transpose(0, 2, 1))
    else:
        W = np.zeros((n, d, 0), dtype=dtype)
    if vector is not None:
        vector = np.asarray(vector, dtype=dtype)[:, :, None]
        new_applied = (
            old_applied + np.matmul(W, np.matmul(W.transpose(0, 2, 1), vector))[:, :, 0]
        )
    if not stacked:
        W = W[0]
        old_applied = None if old_applied is None else old_applied[0]
        new_applied = None if new_applied is None else new_applied[0]
    return W, old_applied, new_applied
