"""Certificates of erasure: how far an updated model can be from the exact retrain.

After a request the parameters ``θ'`` are not exactly the minimiser ``θ̂`` of the
remaining objective ``J_rem(θ) = C Σ_{i∉S} w_i ℓ_i(θ) + ½ λ ‖coef‖²``: the step is
exact to second order only. This module bounds the gap (derivation in
``docs/certificate.md``, after Guo et al. 2020, "Certified Data Removal from
Machine Learning Models"):

- :func:`request_certificate` (called by every request of a linear model): a
  **data-free** upper bound on ``‖∇J_rem(θ')‖``, from the request's rows and the
  stored state only, carried forward over sequential requests
  (:class:`CertificateState` lives in the model's
  :class:`~sklearn_ssse._state.ErasureState`);
- :func:`verify_erasure`: with the remaining rows at hand, the **exact** gradient
  residual in one chunked pass, a rigorous bound on ``‖θ' − θ̂‖`` (strong
  convexity of ``J_rem`` on a ball around ``θ'``, the unpenalised intercept
  included) and on the largest change of any predicted probability over rows the
  user supplies;
- :func:`erasure_audit`: the record of every request of a model as JSON-ready
  dicts (one per request, per output for a multi-output model), or a pandas
  ``DataFrame``.

The maths of the bounds lives here; :mod:`sklearn_ssse.base` only calls it.
Floating-point rounding is not part of the bounds (it is many orders of
magnitude smaller than them on every measured problem).
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_softmax, softmax
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ._curvature_cg import augment_rows
from ._linalg import (
    accumulate_gram,
    symmetrize_from_lower,
    weighted_column_squares,
)
from ._maths import row_chunks

__all__ = [
    "BINARY_HESSIAN_LIPSCHITZ",
    "SOFTMAX_HESSIAN_LIPSCHITZ",
    "CertificateState",
    "ErasureVerification",
    "erasure_audit",
    "request_certificate",
    "verify_erasure",
]

# |d/dz σ'(z)| = |σ(1−σ)(1−2σ)| ≤ 1/(6√3): the binary loss's third derivative.
BINARY_HESSIAN_LIPSCHITZ = 1.0 / (6.0 * np.sqrt(3.0))
# Softmax log-loss: ‖dA(z)[v]‖₂ ≤ max_u Var_p(u) · range(v) ≤ ½ · √2 ‖v‖ for
# A = diag(p) − ppᵀ (D³ lse[u, u, v] = E_p[(U − EU)² (V − EV)]).
SOFTMAX_HESSIAN_LIPSCHITZ = 1.0 / np.sqrt(2.0)
# Largest eigenvalue of the per-row loss Hessian in the logits: ¼ (binary), ½.
_BINARY_CURVATURE_MAX = 0.25
_SOFTMAX_CURVATURE_MAX = 0.5


@dataclass(frozen=True, eq=False)
class CertificateState:
    """What the data-free certificate needs between requests (no row contents).

    Attributes
    ----------
    gram : ndarray of shape (width, width) or None
        With ``gram_removed`` (``R``), the Gram of the rows not forgotten yet,
        ``G = gram − Rᵀ R``, ``G = C Σ_i w_i x̃_i x̃_iᵀ`` (with a one-block
        curvature; ``None`` with a block-diagonal curvature). ``gram`` is shared
        by successive states until ``R`` is folded into it.
    gram_removed : ndarray of shape (r, width) or None
        The weighted rows ``√(C w) x̃`` forgotten since ``gram`` was last
        written: a request appends its rows here (no ``width × width`` copy),
        and they are folded into ``gram`` once ``r`` passes ``width / 8``, and
        always before the state is pickled or copied
        (:meth:`folded`), so that no file holds them or a Gram that still
        counts them (``docs/privacy.md``).
    gershgorin_sums : ndarray of shape (width,) or None
        ``Σ_i C w_i |x̃_i| ‖x̃_i‖₁`` over the rows not forgotten yet (downdated):
        its largest entry bounds ``λ_max(G)`` (Gershgorin), for the structures
        that keep only the Gram's diagonal. ``None`` in older pickles.
    gram_drift : ndarray of shape (n_outputs, width) or None
        ``(θ − θ*) G`` per output row at the parameters ``drift_at``, with ``G``
        the Gram of the rows not forgotten yet: kept up to date request by
        request (one product with ``gram`` each).
    drift_at : ndarray of shape (n_params,) or None
        The parameters at which ``gram_drift`` holds.
    gram_diagonal : ndarray of shape (width,)
        Diagonal of the Gram of the remaining rows (always kept, downdated).
    gram_norm : float
        Upper bound on the largest eigenvalue of ``G``: computed from ``gram``
        when it is written (at ``fit`` and when ``R`` is folded; removing rows
        only lowers the eigenvalue), from the downdated diagonal and
        ``gershgorin_sums`` otherwise.
    row_norm : float
        Upper bound on every ``‖x̃_i‖`` (the state's power-of-two row bound, with
        the intercept column).
    excess_diagonal : ndarray of shape (n_params,)
        ``M − ∇²J`` on the diagonal: the damping beyond the penalty and the floor.
    excess_factor : ndarray of shape (n_params, r)
        The flat-direction terms added to ``M`` (``M − ∇²J − diag = F Fᵀ``).
    penalty : ndarray of shape (n_params,)
        ``λ`` on the penalised coordinates, 0 elsewhere (``∇²`` of the penalty).
    exact_hessian : bool
        Whether the stored ``M`` is the Hessian of the objective at ``θ*`` up to
        the known excess (``curvature="hessian"`` with one block); otherwise
        the step term is bounded through ``G``.
    cumulative_bound : float
        Certified bound on ``‖∇J_rem‖`` at the published parameters (0 at
        ``fit``: the solver's residual is stored exactly and cancelled by the
        first request). ``inf`` once a request could not be certified.
    """

    gram: np.ndarray | None
    gram_diagonal: np.ndarray
    gram_norm: float
    row_norm: float
    excess_diagonal: np.ndarray
    excess_factor: np.ndarray
    penalty: np.ndarray
    exact_hessian: bool
    binary: bool
    gram_drift: np.ndarray | None = None
    drift_at: np.ndarray | None = None
    cumulative_bound: float = 0.0
    nothing_bound: float = 0.0
    notes: tuple = field(default_factory=tuple)
    gram_removed: np.ndarray | None = None
    gershgorin_sums: np.ndarray | None = None

    def replace(self, **changes):
        import dataclasses

        return dataclasses.replace(self, **changes)

    def folded(self):
        """This state with ``gram_removed`` folded into ``gram`` (itself when
        there is nothing to fold): the same Gram, written as one array."""
        if self.gram_removed is None:
            return self
        gram, norm = _fold_gram(self.gram, self.gram_removed)
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__, gram=gram, gram_removed=None, gram_norm=norm)
        return new

    # Pickles, copies and skops files hold the folded Gram only: never the
    # forgotten rows, never a Gram that still counts them.
    def __getstate__(self):
        state = dict(self.folded().__dict__)
        # (θ − θ*) G with G gives θ − θ* back, and so the erased rows' summed
        # gradient: recomputed from the point at the next request instead.
        state["gram_drift"] = state["drift_at"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


# -- fit --
def _augmented_chunks(maths, X, weights):
    """``(√w x̃)`` rows, chunk by chunk, as dense arrays of width ``maths.width``."""
    row_bytes = 8 * maths.width
    for rows in row_chunks(X.shape[0], row_bytes):
        Xt = maths._augment(X[rows]).astype(np.float64, copy=False)
        yield Xt * np.sqrt(weights[rows])[:, None]


def weighted_gram(maths, X, weights, dense=True):
    """``Σ_i w_i x̃_i x̃_iᵀ`` (dense) or its diagonal, one chunked pass."""
    if dense:  # SYRKs into the lower triangle, then mirrored
        G = np.zeros((maths.width, maths.width))
        for Y in _augmented_chunks(maths, X, weights):
            accumulate_gram(G, Y, Y, same=True, in_place=True)
        return symmetrize_from_lower(G)
    return _weighted_square_sums(maths, X, weights)


# Below this size LAPACK's full eigvalsh is as fast as Lanczos and a Cholesky.
_LANCZOS_MIN_SIZE = 600


def top_eigenvalue_bound(G):
    """A rigorous upper bound on ``λ_max(G)`` for a symmetric PSD ``G``.

    Small ``G``: LAPACK's ``eigvalsh``. Large: Lanczos (ARPACK) estimates
    ``λ̃ ≤ λ_max``, and a successful Cholesky factorisation of ``t I − G`` with
    ``t = λ̃ + margin`` proves ``λ_max < t`` (up to the factorisation's backward
    error, ``O(d² u)`` relative, added to ``t``); about ``d³/3`` flops against
    the ``4d³/3`` of the tridiagonal reduction. Falls back to ``eigvalsh`` if
    Lanczos does not converge or no margin up to 10 % is proved.
    """
    d = G.shape[0]
    if d == 0:
        return 0.0
    if d < _LANCZOS_MIN_SIZE:
        return float(np.linalg.eigvalsh(G)[-1])
    from scipy.linalg import cholesky
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

    try:
        estimate = float(
            eigsh(G, k=1, which="LA", tol=1e-6, return_eigenvectors=False)[0]
        )
    except (ArpackError, ArpackNoConvergence):
        return float(np.linalg.eigvalsh(G)[-1])
    scale = max(estimate, float(np.trace(G)) / d, np.finfo(np.float64).tiny)
    rounding = 4.0 * d * d * np.finfo(np.float64).eps
    for margin in (1e-6, 1e-4, 1e-2, 1e-1):
        t = estimate + margin * scale
        shifted = -G
        shifted[np.diag_indices(d)] += t
        try:
            cholesky(shifted, lower=True, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            continue
        return float(t * (1.0 + rounding))
    return float(np.linalg.eigvalsh(G)[-1])


def _fold_gram(gram, removed):
    """``(gram − RᵀR, a bound on its λ_max)`` as a new array (``gram`` is shared
    by earlier states and never written)."""
    folded = gram - removed.T @ removed  # numpy's A.T @ A is a SYRK: symmetric
    norm = top_eigenvalue_bound(folded)
    return folded, norm * (1 + 1e-10) + 1e-300


def _gershgorin_sums(maths, X, weights):
    """``Σ_i w_i |x̃_i| ‖x̃_i‖₁`` (width): :func:`_gershgorin_bound` before its max,
    a sum over rows that a request downdates exactly."""
    weights = np.asarray(weights, dtype=np.float64)
    column = abs(maths.intercept_scaling) if maths.fit_intercept else 0.0
    if sp.issparse(X):
        # |values| on new arrays: scipy's abs() sorts the indices in place, which
        # on a matrix sharing them with the user's X would corrupt X (duplicates
        # kept apart only loosen the bound: Σ|x| ≥ |Σx|).
        X = sp.csr_matrix(X)
        A = sp.csr_matrix(
            (np.abs(X.data, dtype=np.float64), X.indices.copy(), X.indptr.copy()),
            shape=X.shape,
        )
        row_sums = np.asarray(A.sum(axis=1)).ravel() + column
        scaled = weights * row_sums
        sums = np.asarray(A.T @ scaled).ravel()
        if maths.fit_intercept:
            sums = np.append(sums, column * scaled.sum())
        return sums
    sums = np.zeros(maths.width)
    for Y in _augmented_chunks(maths, X, np.ones_like(weights)):
        A = np.abs(Y)
        sums += (weights[: len(A)] * A.sum(axis=1)) @ A
        weights = weights[len(A) :]
    return sums


def _gershgorin_bound(maths, X, weights):
    """An upper bound on ``λ_max(G)``, ``G = Σ_i w_i x̃_i x̃_iᵀ``, in two passes.

    ``|G_jk| ≤ H_jk = Σ_i w_i |x̃_ij| |x̃_ik|``, so (Gershgorin) ``λ_max(G)`` is at
    most the largest row sum of ``H``: ``max_j (|X̃|ᵀ (w ⊙ |X̃| 1))_j``. Sharp on
    sparse non-negative data (TF-IDF), where rows share few columns.
    """
    return float(_gershgorin_sums(maths, X, weights).max(initial=0.0))


def _weighted_square_sums(maths, X, weights):
    """``Σ_i w_i x̃_i²`` (the Gram's diagonal): a pass over the non-zeros of a
    sparse ``X``, chunked ``einsum`` over a dense one."""
    weights = np.asarray(weights, dtype=np.float64)
    if sp.issparse(X):
        diagonal = weighted_column_squares(X, weights[:, None])[0]
        if maths.fit_intercept:
            column = maths.intercept_scaling**2 * weights.sum()
            diagonal = np.append(diagonal, column)
        return diagonal
    diagonal = np.zeros(maths.width)
    for Y in _augmented_chunks(maths, X, weights):
        diagonal += np.einsum("ij,ij->j", Y, Y)
    return diagonal


def fit_certificate_state(
    maths,
    X,
    weights,
    *,
    C,
    penalty,
    prior,
    excess_factor,
    row_norm,
    exact_hessian,
    dense,
    gram=None,
):
    """The certificate's state at ``fit``.

    Parameters
    ----------
    maths : LogisticMaths
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    weights : ndarray of shape (n_samples,)
        ``sample_weight · class_weight`` of every training row.
    C : float
        The data term's scale.
    penalty : ndarray of shape (n_params,)
        The penalty's Hessian diagonal (``λ`` on penalised coordinates).
    prior : ndarray of shape (n_params,)
        What the stored curvature adds to its diagonal (damping and floor).
    excess_factor : ndarray of shape (n_params, r)
        Flat-direction terms added to the stored curvature.
    row_norm : float
        Upper bound on ``‖x‖`` of every training row.
    exact_hessian : bool
        Whether the stored curvature is the one-block Hessian.
    dense : bool
        Whether to keep the whole Gram (one-block curvatures) or its diagonal.
    gram : ndarray of shape (width, width) or None
        ``Σ_i C w_i x̃_i x̃_iᵀ`` when the curvature's pass over the rows made it
        already (``dense`` only); computed here otherwise.
    """
    weights = C * np.asarray(weights, dtype=np.float64)
    if dense:
        if gram is None:
            gram = weighted_gram(maths, X, weights, dense=True)
        gram = np.asarray(gram, dtype=np.float64)
        diagonal = np.diag(gram).copy()
        norm = top_eigenvalue_bound(gram)
        gershgorin = None
    else:
        gram = None
        diagonal = weighted_gram(maths, X, weights, dense=False)
        gershgorin = _gershgorin_sums(maths, X, weights)
        norm = min(float(diagonal.sum()), float(gershgorin.max(initial=0.0)))
    column = maths.intercept_scaling if maths.fit_intercept else 0.0
    return CertificateState(
        gershgorin_sums=gershgorin,
        gram=gram,
        gram_diagonal=diagonal,
        gram_norm=norm * (1 + 1e-10) + 1e-300,
        row_norm=float(np.hypot(row_norm, column)),
        excess_diagonal=np.maximum(prior - penalty, 0.0).astype(np.float64),
        excess_factor=np.asarray(excess_factor, dtype=np.float64),
        penalty=np.asarray(penalty, dtype=np.float64),
        exact_hessian=bool(exact_hessian),
        binary=maths.n_outputs == 1,
    )


# -- one request --
def _weighted_rows(maths, X, weights):
    """``Y = √(C w) x̃`` of a request's rows, dense (a request is a few rows)."""
    Xt = maths._augment(X).astype(np.float64, copy=False)
    return Xt * np.sqrt(np.asarray(weights, dtype=np.float64))[:, None]


def _scaled_augmented_rows(maths, X, weights):
    """``√(C w) x̃`` of a request's rows, sparse for sparse ``X`` (float64)."""
    Xt = augment_rows(X, maths.fit_intercept, maths.intercept_scaling)
    scale = np.sqrt(np.asarray(weights, dtype=np.float64))
    if sp.issparse(Xt):
        return sp.csr_matrix(sp.diags(scale) @ Xt.astype(np.float64))
    return Xt.astype(np.float64) * scale[:, None]


def _gram_rows(gram, A):
    """``A G`` for the few rows of ``A``: one pass over ``G`` (symmetric).

    One matrix-vector product per row up to four rows (OpenBLAS's GEMM costs
    more than a pass over the matrix on so thin a product).
    """
    if A.shape[0] <= 4:
        return np.stack([gram @ a for a in A])
    return A @ gram


def _remaining_gram_rows(cert, A):
    """``A G_cur`` with ``G_cur = gram − RᵀR`` the state's Gram (one pass over
    the stored ``gram``, plus the ``r`` rows forgotten since it was written)."""
    GA = _gram_rows(cert.gram, A)
    if cert.gram_removed is not None:
        GA = GA - (A @ cert.gram_removed.T) @ cert.gram_removed
    return GA


def _gram_after(cert, Y):
    """``(gram, gram_removed, λ_max bound)`` of the state after a request of the
    weighted rows ``Y``: ``Y`` appended to the rows forgotten since ``gram`` was
    written, folded into a new ``gram`` once they pass an eighth of its width."""
    if Y is None or not Y.shape[0]:
        return cert.gram, cert.gram_removed, cert.gram_norm
    removed = Y if cert.gram_removed is None else np.vstack([cert.gram_removed, Y])
    if removed.shape[0] * 8 > cert.gram.shape[0]:
        gram, norm = _fold_gram(cert.gram, removed)
        return gram, None, norm
    return cert.gram, removed, cert.gram_norm


def _remaining_norm(cert, diagonal, gershgorin):
    """An upper bound on ``λ_max`` of the remaining rows' Gram from what the
    state keeps of them: the trace, Gershgorin's bound, the stored Gram's."""
    norm = float(diagonal.sum())
    if gershgorin is not None:
        return min(norm, float(gershgorin.max(initial=0.0)))
    return min(norm, cert.gram_norm)


def _downdated_quadratic(A, GA, Y):
    """``√tr(A (G − YᵀY) Aᵀ)`` from ``A G`` (``Y`` the request's rows or None)."""
    value = float(np.einsum("aj,aj->", A, GA))
    if Y is not None:
        value -= float(np.sum((Y @ A.T) ** 2))
    return float(np.sqrt(max(value, 0.0)))


def _diagonal_quadratic(diagonal, A):
    """An upper bound on ``√tr(A G Aᵀ)`` knowing only ``G ⪰ 0``'s diagonal.

    ``xᵀGx ≤ (Σ_j |x_j| √G_jj)²`` (Cauchy–Schwarz entry by entry).
    """
    per_row = np.abs(A) @ np.sqrt(np.maximum(diagonal, 0))
    return float(np.linalg.norm(per_row))


def _fro(A):
    return float(np.linalg.norm(A))


def _rounding_scale(theta):
    """``√eps · max(‖θ‖, 1)``: a gradient norm of the objective at rounding level."""
    theta = np.asarray(theta)
    eps = np.finfo(theta.dtype if theta.dtype.kind == "f" else np.float64).eps
    return float(np.sqrt(eps) * max(float(np.linalg.norm(theta)), 1.0))


def request_certificate(
    cert,
    maths,
    *,
    theta,
    theta_new,
    point,
    gradient,
    solved=None,
    forget_scale=None,
    removed_hessian=None,
    X=None,
    removed_weights=None,
    solve_residual=None,
    gram_quadratics=None,
):
    """The data-free certificate of one request, and the certificate state after it.

    With ``θ`` the parameters before the request, ``θ' = θ + δ`` after it, ``ĝ``
    the gradient the step used (``∇J_rem(θ)`` up to the carried error ``e``,
    ``‖e‖ ≤ β``) and ``H*`` the Hessian of ``J_rem`` at the curvature point
    ``θ*``::

        ∇J_rem(θ') = (ĝ + H*δ) + e + ∫₀¹ (∇²J_rem(θ + tδ) − H*) δ dt
        ‖∇J_rem(θ')‖ ≤ ‖ĝ + H*δ‖ + β + γ R (‖θ − θ*‖ + ½‖δ‖) √(Λ · tr ΔGΔᵀ)

    (``docs/certificate.md``). The first term is exact when the stored curvature
    is the exact Hessian (one dense block, or the ``"cg"`` / ``"cg-rows"``
    structures, whose conjugate-gradient solve adds its residual ``ρ``) and the
    step is the library's own; otherwise it is bounded through
    ``0 ⪯ ∇²(data) ⪯ κ G``.

    Parameters
    ----------
    cert : CertificateState
    maths : LogisticMaths
    theta, theta_new, point : ndarray of shape (n_params,)
        Parameters before and after the request; the curvature point ``θ*``.
    gradient : ndarray of shape (n_params,)
        ``ĝ``, the remaining objective's gradient at ``theta`` as the step used it.
    solved : ndarray of shape (n_params,) or None
        ``s = M⁻¹ ĝ`` when the step was ``δ = −ε s``; ``None`` for any other step.
    forget_scale : float
        ``ε``.
    removed_hessian : callable or None
        ``v ↦ H*_S v`` (the forgotten rows' Hessian at ``θ*``) when the step
        used the curvature before their removal (``leave_out=False``).
    X : {ndarray, sparse matrix} of shape (k, n_features)
        The forgotten rows (to take them out of the Gram).
    removed_weights : ndarray of shape (k,)
        ``C · w`` of those rows as in ``fit``.
    solve_residual : ndarray of shape (n_params,) or None
        ``ρ = ĝ − M s`` when ``s`` came from an iterative solve (conjugate
        gradient stops at a tolerance); ``None``: ``s = M⁻¹ĝ`` exactly.
    gram_quadratics : callable or None
        ``(A, B) ↦ [√tr(A G Aᵀ), √tr(B G Bᵀ)]`` with ``G`` the exact Gram of the
        rows remaining after the request (the downdated curvature structure's:
        ``"cg"``, ``"cg-rows"``), or ``None``; used where the certificate keeps
        only the Gram's diagonal, the smaller of it and the diagonal's bounds
        being taken.

    Returns
    -------
    certificate : dict
        JSON-ready: ``gradient_bound`` (this request's share), ``step_term``,
        ``taylor_term``, ``carried`` (``β`` before), ``cumulative_gradient_bound``
        (``β`` after).
    cert : CertificateState
        The state after the request.
    """
    theta = np.asarray(theta, dtype=np.float64)
    delta = np.asarray(theta_new, dtype=np.float64) - theta
    gradient = np.asarray(gradient, dtype=np.float64)
    shape = (maths.n_outputs, maths.width)
    Delta = delta.reshape(shape)

    # The Gram of the rows still there after the request (the Taylor term sums
    # over them only): G = G_cur − Y_SᵀY_S with G_cur the state's (its stored
    # Gram less the rows forgotten since it was written) and Y_S this request's
    # rows; its diagonal is downdated exactly. One product with the stored Gram
    # per request: (θ − θ*) G is carried from request to request.
    Y = None
    diagonal = cert.gram_diagonal
    gershgorin = cert.gershgorin_sums
    if X is not None and X.shape[0]:
        if cert.gram is None:  # the diagonal alone (sparse rows stay sparse)
            removed = _weighted_square_sums(maths, X, removed_weights)
            if gershgorin is not None:
                gershgorin = np.maximum(
                    gershgorin - _gershgorin_sums(maths, X, removed_weights), 0.0
                )
        else:
            Y = _weighted_rows(maths, X, removed_weights)
            removed = np.einsum("ij,ij->j", Y, Y)
        diagonal = np.maximum(diagonal - removed, 0.0)
    norm = _remaining_norm(cert, diagonal, gershgorin)
    drift_vector = theta - np.asarray(point, dtype=np.float64)
    Drift = drift_vector.reshape(shape)
    gram_drift = drift_at = None
    gram, gram_removed = cert.gram, cert.gram_removed
    if cert.gram is not None:
        G_delta = _remaining_gram_rows(cert, Delta)
        quad = _downdated_quadratic(Delta, G_delta, Y)
        if cert.gram_drift is not None and np.array_equal(cert.drift_at, theta):
            G_drift = cert.gram_drift
        elif not np.any(Drift):  # the first request
            G_drift = np.zeros_like(Drift)
        else:
            G_drift = _remaining_gram_rows(cert, Drift)
        drift_quad = _downdated_quadratic(Drift, G_drift, Y)
        gram_drift = G_drift + G_delta
        if Y is not None:  # (θ' − θ*) (G_cur − YᵀY)
            gram_drift = gram_drift - ((Drift + Delta) @ Y.T) @ Y
        drift_at = np.array(theta_new, dtype=np.float64)
        gram, gram_removed, norm_after = _gram_after(cert, Y)
        norm = min(norm, norm_after)
    else:  # G ⪯ λ_max I as well: the smaller of the two bounds
        quad = min(_diagonal_quadratic(diagonal, Delta), np.sqrt(norm) * _fro(Delta))
        drift_quad = min(
            _diagonal_quadratic(diagonal, Drift), np.sqrt(norm) * _fro(Drift)
        )
        exact = None
        if gram_quadratics is not None:
            exact = gram_quadratics(Delta, Drift)
        if exact is not None:  # the remaining rows' Gram itself
            quad, drift_quad = min(quad, exact[0]), min(drift_quad, exact[1])

    # 1. The step term ĝ + H*δ.
    penalty_part = gradient + cert.penalty * delta
    if cert.exact_hessian and solved is not None:
        s = np.asarray(solved, dtype=np.float64)
        eps = float(forget_scale)
        # H* = M − E (− H*_S before the removal): ĝ + H*δ = (1−ε)ĝ + ε(E (+H*_S)) s,
        # with δ = −εs up to the rounding of the published parameters.
        excess = cert.excess_diagonal * s + cert.excess_factor @ (
            cert.excess_factor.T @ s
        )
        if removed_hessian is not None:
            excess = excess + removed_hessian(s)
        term = (1 - eps) * gradient + eps * excess
        if solve_residual is not None:  # M s = ĝ − ρ (an iterative solve)
            term = term + eps * np.asarray(solve_residual, dtype=np.float64)
        rounding = delta + eps * s  # published (cast) step minus the exact one
        step_term = float(np.linalg.norm(term))
        if np.any(rounding):
            kappa = _BINARY_CURVATURE_MAX if cert.binary else _SOFTMAX_CURVATURE_MAX
            # ‖(data Hessian) r‖ ≤ κ Λ ‖r‖ (r is a rounding: no need to be tight).
            step_term += float(
                np.linalg.norm(cert.penalty * rounding)
                + kappa * norm * np.linalg.norm(rounding)
            )
    else:
        # 0 ⪯ ∇²(data) ⪯ κ (G ⊗ I): ‖(data Hessian) δ‖ ≤ κ √Λ √tr(ΔGΔᵀ).
        kappa = _BINARY_CURVATURE_MAX if cert.binary else _SOFTMAX_CURVATURE_MAX
        step_term = float(np.linalg.norm(penalty_part) + kappa * np.sqrt(norm) * quad)

    # 2. The Taylor term: the Hessian moves between θ* and θ + tδ.
    # Two bounds on ‖Σ_i C w_i c_i a_i x̃_i‖ with |c_i| ≤ γ (|b_i| + ½|a_i|),
    # a_i = Δx̃_i, b_i = (θ − θ*)x̃_i: through the Gram's norm, or row by row
    # (Σ ≤ R Σ C w |c_i||a_i|, then Cauchy–Schwarz). Both hold; take the smaller.
    gamma = BINARY_HESSIAN_LIPSCHITZ if cert.binary else SOFTMAX_HESSIAN_LIPSCHITZ
    drift = float(np.linalg.norm(drift_vector))
    through_norm = (drift + 0.5 * float(np.linalg.norm(delta))) * np.sqrt(norm) * quad
    row_by_row = (drift_quad + 0.5 * quad) * quad
    taylor_term = gamma * cert.row_norm * min(through_norm, row_by_row)
    own = step_term + taylor_term
    cumulative = cert.cumulative_bound + own
    # Doing nothing would leave ∇J_rem = ĝ + e: the scale to compare with.
    nothing = cert.nothing_bound + float(np.linalg.norm(gradient))
    # Compared with at least the rounding scale of the objective's gradient, so
    # that rows the model fits to rounding (removal gradient ~1e-50) do not make
    # a rounding-sized bound look infinitely worse than doing nothing.
    scale = max(nothing, _rounding_scale(theta))
    certificate = {
        "removal_gradient": _json_float(np.linalg.norm(gradient)),
        "relative_gradient_bound": _json_float(cumulative / scale),
        "gradient_bound": _json_float(own),
        "step_term": _json_float(step_term),
        "taylor_term": _json_float(taylor_term),
        "carried": _json_float(cert.cumulative_bound),
        "cumulative_gradient_bound": _json_float(cumulative),
    }
    return certificate, cert.replace(
        gram=gram,
        gram_removed=gram_removed,
        gram_norm=norm,
        gram_diagonal=diagonal,
        gershgorin_sums=gershgorin,
        gram_drift=gram_drift,
        drift_at=drift_at,
        cumulative_bound=cumulative,
        nothing_bound=nothing,
    )


def stacked_request_certificates(
    certs,
    maths,
    *,
    theta,
    theta_new,
    point,
    gradient,
    solved,
    forget_scale,
    removed_hessian=None,
    X,
    removed_weights,
):
    """:func:`request_certificate` for many binary outputs at once, vectorised.

    The outputs of a multi-output model over binary logistic regressions trained
    on the same rows with the same weights share one Gram ``G``: it is downdated
    once and shared by the new states (one ``width × width`` array, not one per
    output), and every bound is computed for all outputs by stacked products.

    Parameters
    ----------
    certs : list of CertificateState
        One per output, all binary with a dense Gram (else ``None`` is returned).
    maths : LogisticMaths
        The (common) maths of the outputs.
    theta, theta_new, point, gradient, solved : ndarray of shape (n_outputs, n_params)
        As in :func:`request_certificate`, one row per output; the step of every
        output is ``−ε · solved``.
    forget_scale : float
        ``ε``.
    removed_hessian : callable or None
        ``S ↦ (H*_{S,o} S_o)_o`` on ``(n_outputs, n_params)`` arrays, when the step
        used the curvature before the removal.
    X : ndarray of shape (k, n_features)
        The forgotten rows.
    removed_weights : ndarray of shape (k,)
        ``C · w`` of those rows, the same for every output.

    Returns
    -------
    list of (dict, CertificateState) or None
        Each output's certificate and state after the request, as
        :func:`request_certificate` gives them; ``None`` if the outputs do not
        share their Gram (call :func:`request_certificate` per output instead).
    """
    if not certs or not all(
        c is not None and c.binary and c.gram is not None for c in certs
    ):
        return None
    first = certs[0]
    gram, pending = first.gram, first.gram_removed
    factor_shape = first.excess_factor.shape
    for c in certs[1:]:
        if c.excess_factor.shape != factor_shape:
            return None
        if c.gram is not gram and not (
            c.gram.shape == gram.shape and np.array_equal(c.gram, gram)
        ):
            return None
        if c.gram_removed is not pending and not (
            c.gram_removed is not None
            and pending is not None
            and np.array_equal(c.gram_removed, pending)
        ):
            return None
    f64 = np.float64
    theta = np.asarray(theta, dtype=f64)
    delta = np.asarray(theta_new, dtype=f64) - theta
    gradient = np.asarray(gradient, dtype=f64)

    # As request_certificate: the Gram of the rows still there is G_cur − Y_SᵀY_S
    # (its stored array shared by every output and never copied), its diagonal
    # downdated exactly, and (θ − θ*) G carried between requests.
    Y = _weighted_rows(maths, X, removed_weights)
    diagonal = np.array([c.gram_diagonal for c in certs]) - np.einsum("ij,ij->j", Y, Y)
    diagonal = np.maximum(diagonal, 0.0)
    gram_after, removed_after, norm_after = _gram_after(first, Y)
    norm = np.minimum(
        np.minimum([c.gram_norm for c in certs], norm_after), diagonal.sum(axis=1)
    )
    drift_vector = theta - np.asarray(point, dtype=f64)
    n = theta.shape[0]
    # (θ − θ*) G: carried where the state holds it at θ, zero at θ*, else one
    # product for the outputs that need it, together with Δ G.
    G_drift = np.zeros_like(drift_vector)
    missing = []
    for o, c in enumerate(certs):
        if c.gram_drift is not None and np.array_equal(c.drift_at, theta[o]):
            G_drift[o] = c.gram_drift.ravel()
        elif np.any(drift_vector[o]):
            missing.append(o)
    products = _remaining_gram_rows(first, np.vstack([delta, drift_vector[missing]]))
    G_delta = products[:n]
    G_drift[missing] = products[n:]

    def quad(A, GA):  # √(a (G_cur − YᵀY) aᵀ) for every row a of A
        value = np.einsum("oj,oj->o", A, GA) - np.sum((Y @ A.T) ** 2, axis=0)
        return np.sqrt(np.maximum(value, 0.0))

    q = quad(delta, G_delta)
    drift_quad = quad(drift_vector, G_drift)
    new_drift = G_drift + G_delta - ((drift_vector + delta) @ Y.T) @ Y
    drift_at = np.array(theta_new, dtype=f64)
    penalty = np.array([c.penalty for c in certs])
    kappa = _BINARY_CURVATURE_MAX
    exact = np.array([c.exact_hessian for c in certs]) & (solved is not None)
    if exact.any():
        s = np.asarray(solved, dtype=f64)
        eps = float(forget_scale)
        rounding = delta + eps * s  # published (cast) step minus the exact one

    # 1. The step term ĝ + H*δ.
    step_term = (
        np.linalg.norm(gradient + penalty * delta, axis=1) + kappa * np.sqrt(norm) * q
    )
    if exact.any():
        F = np.array([c.excess_factor for c in certs])  # (n, P, r)
        excess = np.array([c.excess_diagonal for c in certs]) * s
        if F.shape[2]:
            excess += np.einsum("opr,or->op", F, np.einsum("opr,op->or", F, s))
        if removed_hessian is not None:
            excess = excess + removed_hessian(s)
        term = (1 - eps) * gradient + eps * excess
        exact_term = np.linalg.norm(term, axis=1)
        rounded = np.any(rounding != 0, axis=1)
        # ‖(data Hessian) r‖ ≤ κ Λ ‖r‖ (r is a rounding: no need to be tight).
        exact_term += np.where(
            rounded,
            np.linalg.norm(penalty * rounding, axis=1)
            + kappa * norm * np.linalg.norm(rounding, axis=1),
            0.0,
        )
        step_term = np.where(exact, exact_term, step_term)

    # 2. The Taylor term, as in request_certificate.
    drift = np.linalg.norm(drift_vector, axis=1)
    through_norm = (drift + 0.5 * np.linalg.norm(delta, axis=1)) * np.sqrt(norm) * q
    row_by_row = (drift_quad + 0.5 * q) * q
    row_norm = np.array([c.row_norm for c in certs])
    taylor_term = (
        BINARY_HESSIAN_LIPSCHITZ * row_norm * np.minimum(through_norm, row_by_row)
    )
    own = step_term + taylor_term
    carried = np.array([c.cumulative_bound for c in certs])
    cumulative = carried + own
    nothing = np.array([c.nothing_bound for c in certs]) + np.linalg.norm(
        gradient, axis=1
    )
    removal = np.linalg.norm(gradient, axis=1)
    scale = np.maximum(nothing, [_rounding_scale(theta[o]) for o in range(len(certs))])
    relative = cumulative / scale
    columns = {
        "removal_gradient": removal,
        "relative_gradient_bound": relative,
        "gradient_bound": own,
        "step_term": step_term,
        "taylor_term": taylor_term,
        "carried": carried,
        "cumulative_gradient_bound": cumulative,
    }
    # JSON floats (None for NaN and ±inf), column by column.
    columns = {
        key: [v if math.isfinite(v) else None for v in np.asarray(a, float).tolist()]
        for key, a in columns.items()
    }
    out = []
    for o, c in enumerate(certs):
        certificate = {key: values[o] for key, values in columns.items()}
        # (a frozen dataclass without __post_init__: copied without __init__)
        state = object.__new__(type(c))
        state.__dict__.update(
            c.__dict__,
            gram=gram_after,
            gram_removed=removed_after,
            gram_norm=float(norm[o]),
            gram_diagonal=diagonal[o],
            gram_drift=new_drift[o : o + 1],
            drift_at=drift_at[o],
            cumulative_bound=float(cumulative[o]),
            nothing_bound=float(nothing[o]),
        )
        out.append((certificate, state))
    return out


def uncertified(cert, reason):
    """Certificate and state after a request the bounds do not cover."""
    certificate = {
        "gradient_bound": None,
        "step_term": None,
        "taylor_term": None,
        "carried": _json_float(cert.cumulative_bound),
        "cumulative_gradient_bound": None,
        "note": reason,
    }
    return certificate, cert.replace(
        cumulative_bound=np.inf, notes=cert.notes + (reason,)
    )


def distance_bound(gradient_bound, strong_convexity):
    """``‖θ' − θ̂‖ ≤ ‖∇J_rem(θ')‖ / μ`` for a μ-strongly convex ``J_rem``."""
    if gradient_bound is None or not strong_convexity > 0:
        return None
    return _json_float(gradient_bound / strong_convexity)


def _json_float(value):
    """A float for JSON: ``None`` for NaN and ±inf (``allow_nan=False`` works)."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


# -- verification with the data --
@dataclass(frozen=True)
class ErasureVerification:
    """What :func:`verify_erasure` found (every field JSON-ready).

    Attributes
    ----------
    gradient_norm : float
        The exact ``‖∇J_rem(θ')‖`` over the remaining rows.
    strong_convexity : float or None
        A lower bound ``μ`` on the curvature of ``J_rem`` on the ball of radius
        ``radius`` around ``θ'`` (``None``: none could be certified, e.g.
        ``C=np.inf``).
    radius : float or None
        The ball's radius (``μ · radius ≥ gradient_norm``).
    distance_bound : float or None
        Certified ``‖θ' − θ̂‖ ≤ gradient_norm / μ`` (``θ̂`` the exact retrain's
        minimiser; for a multinomial model with an intercept, the minimiser whose
        intercepts sum as those of ``θ'``).
    max_proba_change : float or None
        Largest ``|p_k(x; θ') − p_k(x; θ̂)|`` over the rows of ``X_query`` and
        the classes ``k`` that the distance bound allows.
    certified_gradient_bound : float or None
        The model's own data-free bound at the same parameters, for comparison.
    n_remaining : int
        Rows the residual was computed over.
    reference : str
        What the bounds are against: the exact minimiser of the remaining
        objective, not a refit made with a solver's default tolerance.
    how_to_check : str
        How to check the bounds independently.
    """

    gradient_norm: float
    strong_convexity: float | None
    radius: float | None
    distance_bound: float | None
    max_proba_change: float | None
    certified_gradient_bound: float | None
    n_remaining: int
    reference: str = (
        "the exact minimiser of the remaining objective (the model's C, penalty, "
        "class and sample weights over the remaining rows), not a refit at a "
        "solver's default tolerance (tol=1e-4 can sit further away than the bound)"
    )
    how_to_check: str = (
        "refit a clone on the remaining rows with tol=1e-12 and a large max_iter; "
        "its distance to the model's [coef_ | intercept_] is at most distance_bound "
        "and its probabilities on X_query differ by at most max_proba_change"
    )

    def to_dict(self):
        """The fields as a dict of plain Python values."""
        return {
            k: v if k in _TEXT_FIELDS else _json_float(v) for k, v in vars(self).items()
        }

    def to_json(self, **kwargs):
        """The fields as JSON (no NaN)."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)


_RADII = np.geomspace(1e-6, 1e3, 28)
_TEXT_FIELDS = ("n_remaining", "reference", "how_to_check")


def verify_erasure(
    model,
    X_remaining,
    y_remaining,
    sample_weight=None,
    *,
    X_query=None,
    perturbation=None,
):
    """The exact residual of an erased model, and what it proves, with the data.

    One chunked pass over the remaining rows computes the exact gradient of the
    remaining objective ``J_rem`` at the model's parameters ``θ'``, and, in the same
    pass, a lower bound ``μ(r)`` on the curvature of ``J_rem`` on balls of radius
    ``r`` around ``θ'`` for a grid of radii (from the penalty and a lower bound on
    each row's loss curvature on the ball; the unpenalised intercept is covered by
    the data's curvature). The smallest radius with ``μ(r) · r ≥ ‖∇J_rem(θ')‖``
    proves that the exact retrain lies within ``‖∇J_rem(θ')‖ / μ(r)``
    (``docs/certificate.md``, "Verification"). No model is refitted.

    Parameters
    ----------
    model : ErasableLogisticRegression, or a composition of one
        A fitted model, after any number of requests; or a
        :class:`~sklearn.pipeline.Pipeline`, a search (``refit`` set) or an
        :class:`~sklearn_ssse.ErasableLogisticRegressionCV` ending in one, whose
        final model is checked (the rows are then raw, as given to its ``fit``).
    X_remaining : {array-like, sparse matrix} of shape (n_remaining, n_features)
        The training rows not forgotten (all of them: the residual is over the
        whole remaining objective). Their number per class (of positive
        weight) must match the model's record (``erasure_state_.class_counts``),
        or a ``ValueError`` says so.
    y_remaining : array-like of shape (n_remaining,)
        Their labels.
    sample_weight : array-like of shape (n_remaining,), default=None
        Their sample weights in ``fit``.
    X_query : {array-like, sparse matrix} of shape (n_query, n_features), default=None
        Rows over which to bound the change of the predicted probabilities.
    perturbation : ndarray of shape (n_params,), default=None
        For a model fitted with ``removal_noise`` (certified removal): the
        noise ``b`` of its objective ``J + bᵀθ``, flat as
        ``[coef_ | intercept_]`` rows, if the caller has it (the model never
        stores it; it can be redrawn only from a secret seed, see
        :func:`sklearn_ssse._perturbation.draw_perturbation`). The residual is
        then the perturbed remaining objective's, the one the model minimises.
        Without it, the residual of such a model is the *unperturbed*
        objective's: at the fit it is ``‖b‖`` (the noise itself), and the
        distance bound is to the unperturbed retrain (how far the noise put
        the model from plain logistic regression), not a check of the removal.

    Returns
    -------
    verification : ErasureVerification
        Its bounds are against the exact minimiser of the remaining objective
        (``reference``); a refit at a solver's default tolerance may sit
        further away than they allow: check them with ``tol=1e-12``
        (``how_to_check``).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.certificate import verify_erasure
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> model = ErasableLogisticRegression(max_iter=1000).fit(X, y)
    >>> model = model.partial_forget(X[:10], y[:10])
    >>> check = verify_erasure(model, X[10:], y[10:], X_query=X)
    >>> check.gradient_norm <= model.request_records_[-1].certificate[
    ...     "cumulative_gradient_bound"]
    True
    >>> check.max_proba_change < 0.05
    True
    """
    from sklearn.utils.validation import validate_data

    from ._composition import unwrap

    model, to_inputs = unwrap(model)  # a pipeline, search or CV model: raw rows
    X_remaining = to_inputs(X_remaining)
    X_query = None if X_query is None else to_inputs(X_query)
    check_is_fitted(model, "erasure_state_")
    view = model._snapshot()
    state = view.erasure_state_
    maths = view._erasure_maths()
    X, y_user = validate_data(
        view,
        X_remaining,
        y_remaining,
        reset=False,
        accept_sparse="csr",
        dtype=[np.float64, np.float32],
        order="C",
    )
    sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    y = np.searchsorted(view.classes_, y_user)
    _check_remaining_bookkeeping(view, state, y, y_user, sample_weight)
    C, strength, penalized = view._objective_scaling()
    active = state.class_counts > 0
    class_weight = np.asarray(
        view._class_weights(state.class_weight_sums, active), dtype=np.float64
    )
    weights = C * sample_weight * class_weight[y]
    theta = view._get_flat_params().astype(np.float64)
    Theta = theta.reshape(maths.n_outputs, maths.width)
    W, b = maths._split(Theta)
    s = maths.intercept_scaling if maths.fit_intercept else 0.0

    gradient = np.zeros_like(Theta)
    row_max = 0.0
    # The ball bound is needed only for a multinomial model's unpenalised
    # intercepts (binary ones are profiled out; penalised ones have μ = λ).
    ball = (
        maths.n_outputs > 1
        and maths.fit_intercept
        and strength > 0
        and not np.all(penalized > 0)
    )
    Q = np.zeros(len(_RADII))
    moments = np.zeros((len(_RADII), maths.n_features))
    for rows in row_chunks(X.shape[0], 8 * (maths.n_outputs + len(_RADII)) * 2):
        Xc = X[rows]
        Z = np.asarray(Xc @ W.T, dtype=np.float64) + b
        norms = np.sqrt(_sq_row_norms(Xc) + s * s)
        row_max = max(row_max, float(norms.max(initial=0.0)))
        wc = weights[rows]
        if maths.n_outputs == 1:
            p = expit(Z[:, 0])
            r = (p - (y[rows] == 1)) * wc
            # σ' is decreasing in |z|: its minimum on the ball is at |z| + ‖x̃‖ r.
            R = r[:, None]
        else:
            Zm = np.where(active, Z, -np.inf)
            P = softmax(Zm, axis=1)
            target = np.zeros_like(P)
            target[np.arange(len(Zm)), y[rows]] = 1
            R = (P - target) * wc[:, None]
            # diag p − ppᵀ ⪰ c·p_min² on 1⊥; log p_k moves by ≤ √2 ‖Δz‖ on the ball.
            if ball:
                log_min = log_softmax(Zm, axis=1)[:, active].min(axis=1)
                reach = log_min[:, None] - np.sqrt(2) * norms[:, None] * _RADII
                low = int(active.sum()) * np.exp(2 * reach)
        gradient[:, : maths.n_features] += _as_dense(Xc.T @ R).T
        if maths.fit_intercept:
            gradient[:, -1] += s * R.sum(axis=0)
        if ball:
            q = low * wc[:, None]
            Q += q.sum(axis=0)
            moments += _as_dense(Xc.T @ q).T
    flat_gradient = gradient.ravel() + strength * penalized * theta
    if perturbation is not None:
        perturbation = np.asarray(perturbation, dtype=np.float64).ravel()
        if perturbation.shape != flat_gradient.shape:
            raise ValueError(
                f"perturbation has {perturbation.size} entries; the model has "
                f"{flat_gradient.size} parameters"
            )
        flat_gradient = flat_gradient + perturbation
    if maths.n_outputs > 1 and not np.all(active):
        flat_gradient = flat_gradient.reshape(Theta.shape)
        flat_gradient[~active] = 0
        flat_gradient = flat_gradient.ravel()
    norm = float(np.linalg.norm(flat_gradient))

    radius = strong = distance = None
    feasible = np.array([], dtype=int)
    if strength > 0 and np.all(penalized > 0):  # λ-strongly convex everywhere
        strong, distance = float(strength), norm / float(strength)
    elif ball:
        mu = _curvature_lower_bounds(Q, moments, strength, s)
        feasible = np.flatnonzero(mu * _RADII >= norm)
    if feasible.size and norm == 0:
        radius, strong, distance = 0.0, float(mu[0]), 0.0
    elif feasible.size:
        j = feasible[0]
        radius, strong = float(_RADII[j]), float(mu[j])
        distance = norm / strong
    split = None
    profile = (
        maths.n_outputs == 1
        and maths.fit_intercept
        and strength > 0
        and not np.all(penalized > 0)
    )
    if profile:
        # The unpenalised intercept, profiled out (docs/certificate.md).
        split = _profiled_distance(
            X, y, weights, W[0], Theta[0, -1], s, strength, perturbation
        )
        coef_distance, intercept_distance = split
        profiled = float(np.hypot(coef_distance, intercept_distance))
        if distance is None or profiled < distance:
            distance, radius = profiled, None
            strong = None
    metric = None
    cert = getattr(state, "certificate_state", None)
    # The metric bound needs the eigenvalues of the stored inverse (O(P³)):
    # done only when that is small (P ≤ 500) or small next to the data.
    cheap = maths.n_params <= 500 or maths.n_params**2 <= 10 * X.shape[0]
    if cert is not None and cert.exact_hessian and strength > 0 and cheap:
        metric = _curvature_metric_distance(
            state, cert, theta, flat_gradient, row_max, maths.n_outputs == 1
        )
        if metric is not None and (distance is None or metric[1] < distance):
            distance, strong, radius = metric[1], None, None
    change = None
    if X_query is not None and distance is not None:
        change = _max_proba_change(
            view, maths, X_query, Theta, distance, active, split=split
        )
        if metric is not None:
            change = min(
                change,
                _max_proba_change(
                    view, maths, X_query, Theta, distance, active, metric=metric
                ),
            )
    records = state.records
    certified = None
    if records and records[-1].certificate:
        certified = records[-1].certificate.get("cumulative_gradient_bound")
    return ErasureVerification(
        gradient_norm=norm,
        strong_convexity=strong,
        radius=radius,
        distance_bound=distance,
        max_proba_change=change,
        certified_gradient_bound=certified,
        n_remaining=int(X.shape[0]),
    )


def _check_remaining_bookkeeping(model, state, y, y_user, sample_weight):
    """Refuse a remaining set that the model's own counts contradict."""
    classes = model.classes_
    unknown = (y >= len(classes)) | (classes[np.minimum(y, len(classes) - 1)] != y_user)
    if np.any(unknown):
        raise ValueError(
            "verify_erasure: y_remaining holds labels the model was not fitted on"
        )
    given = np.bincount(y[sample_weight > 0], minlength=len(classes))
    recorded = np.asarray(state.class_counts)
    if given.shape == recorded.shape and np.array_equal(given, recorded):
        return
    raise ValueError(
        f"verify_erasure: the remaining set has {int(given.sum())} rows of positive "
        f"weight, {dict(zip(classes.tolist(), given.tolist()))} per class, but the "
        f"model's record says {int(recorded.sum())} rows remain "
        f"({dict(zip(classes.tolist(), recorded.tolist()))}) after "
        f"{state.n_forgotten} forgotten: these are not the rows the model is "
        "trained on now (rows forgotten since, or not yet?), so a residual over "
        "them proves nothing"
    )


def _curvature_metric_distance(state, cert, theta, gradient, row_max, binary):
    """The distance to the retrain in the stored Hessian's metric.

    ``H*`` (the remaining objective's Hessian at the curvature point ``θ*``) is
    the stored ``M`` less a known excess ``E ⪯ e·I``. Logistic losses are
    generalised self-concordant: along any move of the logits by ``Δz`` the loss
    Hessian shrinks at most by ``exp(−c‖Δz‖)`` (``c = 1`` binary, ``√2``
    softmax), so on ``K = {‖θ − θ'‖_{H*} ≤ ρ}`` the objective is
    ``κ(ρ)``-strongly convex in the ``H*`` norm with
    ``κ = exp(−c R (‖θ' − θ*‖ + ρ/√μ*))``. If ``ν = ‖∇J‖_{H*⁻¹} < κρ`` the
    retrain lies in ``K`` within ``ν/κ`` (``H*`` norm), ``ν/(κ√μ*)`` in
    Euclidean norm.

    Returns ``(H*-distance, Euclidean distance, c0, inverse)`` or ``None``.
    """
    inverse = state.curvature
    M_inv = inverse.to_dense().astype(np.float64)
    if M_inv.shape[0] <= 2000:
        top = float(np.linalg.eigvalsh(M_inv)[-1])
    else:  # Gershgorin: the largest absolute row sum
        top = float(np.abs(M_inv).sum(axis=1).max())
    mu_M = 1.0 / top
    e = float(cert.excess_diagonal.max(initial=0.0))
    c0 = 1.0 - e / mu_M
    if not c0 > 0:
        return None
    nu = float(np.sqrt(max(gradient @ (M_inv @ gradient), 0.0) / c0))
    mu_star = c0 * mu_M
    if state.point is None:  # sealed (a loaded model): the bound needs θ*
        return None
    drift = float(np.linalg.norm(theta - state.point))
    c = 1.0 if binary else np.sqrt(2.0)
    for rho in np.geomspace(max(nu, 1e-300), max(nu, 1e-300) * 1e6, 121):
        kappa = np.exp(-c * row_max * (drift + rho / np.sqrt(mu_star)))
        if kappa * rho > nu:
            metric = nu / kappa
            return metric, metric / np.sqrt(mu_star), c0, M_inv
    return None


def _profiled_distance(X, y, weights, w, t, s, strength, perturbation=None):
    """Distances of a binary model's coefficients and intercept to the retrain.

    ``φ(u) = min_t J(u, t)`` is ``λ``-strongly convex (a partial minimum of a
    convex function, plus the penalty), with ``∇φ(u) = ∇_u J(u, t*(u))``; so
    ``‖u' − û‖ ≤ ‖∇_u J(u', t*(u'))‖ / λ``. ``t*(u')`` is a one-dimensional convex
    problem over the stored logits (bisection, ``O(n)`` per step); and
    ``|dt*/du · v| ≤ max_i |x_iᵀv| / s`` gives
    ``|t' − t̂| ≤ |t' − t*(u')| + (max_i ‖x_i‖ / s) ‖u' − û‖``.
    """
    chunks = list(row_chunks(X.shape[0], 8 * 4))
    z = np.concatenate(
        [np.asarray(X[rows] @ w, dtype=np.float64).ravel() for rows in chunks]
    )
    norms = np.sqrt(np.concatenate([_sq_row_norms(X[rows]) for rows in chunks]))
    target = (y == 1).astype(np.float64)

    # A perturbation bᵀθ adds its constant to each partial derivative.
    b_coef, b_int = 0.0, 0.0
    if perturbation is not None:
        b_coef, b_int = perturbation[:-1], float(perturbation[-1])

    def slope(tau):  # ∂J/∂t at (u', tau): increasing in tau
        return s * np.dot(weights, expit(z + s * tau) - target) + b_int

    lo, hi = t - 1.0, t + 1.0
    while slope(lo) > 0 and lo > t - 1e6:
        lo = t - 2 * (t - lo)
    while slope(hi) < 0 and hi < t + 1e6:
        hi = t + 2 * (hi - t)
    for _ in range(200):  # bisection to machine precision
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if slope(mid) > 0:
            hi = mid
        else:
            lo = mid
    t_star = 0.5 * (lo + hi)
    r = weights * (expit(z + s * t_star) - target)
    gradient = np.zeros_like(w)
    for rows in chunks:
        gradient += np.asarray(X[rows].T @ r[rows], dtype=np.float64).ravel()
    gradient += strength * w + b_coef
    coef_distance = float(np.linalg.norm(gradient)) / strength
    row_max = float(norms.max(initial=0.0))
    intercept_distance = abs(t - t_star) + row_max / s * coef_distance
    return coef_distance, intercept_distance


def _sq_row_norms(X):
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
    return np.einsum("ij,ij->i", X, X, dtype=np.float64)


def _as_dense(A):
    return A.toarray() if sp.issparse(A) else np.asarray(A)


def _curvature_lower_bounds(Q, moments, strength, s):
    """``μ(r)`` for every radius of the grid (``docs/certificate.md``).

    With ``q_i(r)`` a lower bound on row ``i``'s loss curvature on the ball,
    ``Q = Σ q_i`` and ``m = Σ q_i x_i / Q``, Jensen's inequality gives
    ``vᵀ∇²J v ≥ λ‖u‖² + Q (mᵀu + s t)²`` for ``v = (u, t)``; the smallest
    eigenvalue of that form is that of a 2 × 2 matrix (and ``λ``).
    """
    mu = np.zeros(len(Q))
    for j in range(len(Q)):  # a loop over the radius grid, not over samples
        if Q[j] <= 0:
            continue
        m = np.linalg.norm(moments[j]) / Q[j]
        form = np.array(
            [[strength + Q[j] * m * m, Q[j] * m * s], [Q[j] * m * s, Q[j] * s * s]]
        )
        low = np.linalg.eigvalsh(form)[0]
        mu[j] = max(min(low, strength) if strength > 0 else 0.0, 0.0)
    return mu


def _max_proba_change(
    view, maths, X_query, Theta, distance, active, split=None, metric=None
):
    """Largest change of a predicted probability when ``‖θ − θ'‖ ≤ distance``.

    With ``split = (coefficient distance, intercept distance)`` a logit moves by
    at most ``‖x‖ d_coef + s d_intercept``.
    """
    from sklearn.utils.validation import validate_data

    X = validate_data(
        view, X_query, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32]
    )
    W, b = maths._split(Theta)
    s = maths.intercept_scaling if maths.fit_intercept else 0.0
    worst = 0.0
    for rows in row_chunks(X.shape[0], 8 * 4 * maths.n_outputs):
        Xc = X[rows]
        Z = np.asarray(Xc @ W.T, dtype=np.float64) + b
        if metric is not None:
            # |Δz_k| ≤ ‖e_k ⊗ x̃‖_{H*⁻¹} ‖Δθ‖_{H*}, ‖e_k ⊗ x̃‖²_{H*⁻¹} ≤ (·)_{M⁻¹}/c0.
            Xt = maths._augment(Xc).astype(np.float64, copy=False)
            M_inv, c0 = metric[3], metric[2]
            per_class = np.column_stack(
                [
                    np.einsum(
                        "ij,jk,ik->i",
                        Xt,
                        M_inv[k * maths.width : (k + 1) * maths.width][
                            :, k * maths.width : (k + 1) * maths.width
                        ],
                        Xt,
                    )
                    for k in range(maths.n_outputs)
                ]
            )
            reach = np.sqrt(np.maximum(per_class, 0).sum(axis=1) / c0) * metric[0]
        elif split is None:
            reach = np.sqrt(_sq_row_norms(Xc) + s * s) * distance  # ‖x̃‖·dist
        else:
            reach = np.sqrt(_sq_row_norms(Xc)) * split[0] + s * split[1]
        if maths.n_outputs == 1:
            z = Z[:, 0]
            p = expit(z)
            change = np.maximum(expit(z + reach) - p, p - expit(z - reach))
        else:
            P = softmax(np.where(active, Z, -np.inf), axis=1)
            # log p_k moves by ≤ √2 ‖Δz‖, and the softmax is ½-Lipschitz.
            factor = np.expm1(np.sqrt(2) * reach)[:, None]
            change = np.minimum(P * factor, np.minimum(0.5 * reach, 1.0)[:, None])
            change = np.minimum(change, 1.0)
        worst = max(worst, float(np.max(change, initial=0.0)))
    return worst


# -- the audit record --
class AuditLog(list):
    """The records of :func:`erasure_audit`: a list of flat JSON-ready dicts."""

    def to_json(self, **kwargs):
        """The records as a JSON array (no NaN: ``allow_nan=False``)."""
        return json.dumps(list(self), allow_nan=False, **kwargs)

    def to_frame(self):
        """The records as a :class:`pandas.DataFrame` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(list(self))


def _flat_record(record, output=None):
    row = {} if output is None else {"output": output}
    data = record.to_dict()
    certificate = data.pop("certificate", None) or {}
    per_class = data.pop("rows_per_class", {})
    row.update(data)
    row["rows_per_class"] = json.dumps(per_class, sort_keys=True)
    for key, value in certificate.items():
        if isinstance(value, dict):  # e.g. certified_removal: one column each
            for inner, entry in value.items():
                row[f"certificate_{key}_{inner}"] = entry
        else:
            row[f"certificate_{key}"] = value
    return row


def erasure_audit(model):
    """Every request a model took since ``fit``, as flat JSON-ready records.

    One dict per request (per output and request for an
    :class:`~sklearn_ssse.ErasableMultiOutputClassifier`, with an ``output``
    column): when, how many rows (per class), ε, curvature, leave-out, the
    step's size, the certificate and the library version. No row contents.

    Parameters
    ----------
    model : fitted erasable estimator, or a composition of one
        A bare estimator, or a pipeline, search (``refit`` set) or
        :class:`~sklearn_ssse.ErasableLogisticRegressionCV` ending in one: the
        records of its final model.

    Returns
    -------
    log : AuditLog
        A list of dicts with ``to_json()`` (valid JSON, no NaN) and
        ``to_frame()`` (a pandas ``DataFrame``).

    Examples
    --------
    >>> import json
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.certificate import erasure_audit
    >>> X, y = load_iris(return_X_y=True)
    >>> model = ErasableLogisticRegression(max_iter=1000).fit(X, y)
    >>> model = model.partial_forget(X[:3], y[:3])
    >>> log = erasure_audit(model)
    >>> log[0]["n_rows"], log[0]["curvature"]
    (3, 'hessian')
    >>> json.loads(log.to_json())[0]["certificate_cumulative_gradient_bound"] > 0
    True
    """
    from ._composition import unwrap

    model, _ = unwrap(model)  # a pipeline, search or CV model: its final model
    if hasattr(model, "estimators_") and not hasattr(model, "erasure_state_"):
        check_is_fitted(model)
        rows = []
        for j, estimator in enumerate(model.estimators_):
            records = getattr(estimator, "request_records_", ())
            rows.extend(_flat_record(record, output=j) for record in records)
        return AuditLog(rows)
    check_is_fitted(model, "erasure_state_")
    return AuditLog(_flat_record(record) for record in model.request_records_)
