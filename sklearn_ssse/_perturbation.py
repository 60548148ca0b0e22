"""Objective perturbation for certified removal (Guo et al. 2020, Algorithm 1).

``fit`` with ``removal_noise=σ`` minimises the perturbed objective

    J_b(θ) = C Σ_i w_i ℓ_i(θ) + ½ λ ‖Pθ‖² + bᵀθ,    b ~ N(0, σ² I)

over every parameter (the intercepts included). The noise ``b`` is drawn here,
used for the solve and dropped: it is never stored on the model (anyone holding
``b`` and the data could tell a removal from a retrain). The maths of the
guarantee is in ``docs/certificate.md`` ("Certified removal"); this module only
draws ``b``, evaluates ``J_b`` and its gradient (binary and softmax, sample and
class weights, chunked over rows) and minimises it with L-BFGS, warm-started
from scikit-learn's own solution of the unperturbed objective.
"""

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator, cg
from scipy.special import expit, log_expit, log_softmax

from ._maths import row_chunks

__all__ = [
    "draw_perturbation",
    "gradient_budget",
    "perturbed_minimiser",
    "perturbed_objective",
]


def gradient_budget(noise, epsilon, delta):
    """The largest gradient residual ``(ε, δ)``-certified removal tolerates.

    Guo et al. 2020, Theorem 3: with ``b ~ N(0, σ² I)``, a released model whose
    remaining objective's gradient is at most ``β ≤ σ ε / c``,
    ``c = √(2 log(1.5/δ))``, is an ``(ε, δ)``-certified removal.

    Parameters
    ----------
    noise : float
        ``σ``, the standard deviation of every coordinate of ``b``.
    epsilon, delta : float
        The guarantee's ``ε > 0`` and ``0 < δ < 1``.

    Returns
    -------
    budget : float
    """
    scale = np.sqrt(2.0 * np.log(1.5 / float(delta)))
    return float(float(noise) * float(epsilon) / scale)


def draw_perturbation(maths, noise, random_state=None):
    """``b ~ N(0, σ² I)`` over the parameters, without the softmax's flat direction.

    A multinomial model with intercepts is unchanged by adding one constant to
    every intercept, and nothing in the objective pins that direction: a
    component of ``b`` along it would make ``J_b`` unbounded below. ``b`` is
    drawn in the orthogonal complement (a Gaussian of variance ``σ²`` in every
    direction of that subspace), where ``J_b`` is strictly convex.

    Parameters
    ----------
    maths : LogisticMaths
    noise : float
        ``σ``.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        ``None``: fresh entropy from the operating system. An int: a seed (the
        guarantee then holds only while the seed stays secret).

    Returns
    -------
    b : ndarray of shape (n_params,)
    """
    if random_state is None or isinstance(random_state, (int, np.integer)):
        rng = np.random.default_rng(random_state)
    else:
        rng = random_state  # a Generator or a RandomState
    b = rng.normal(0.0, float(noise), size=maths.n_params)
    null = maths.null_directions()
    if null.size:
        b = b - null @ (null.T @ b)
    return b


def perturbed_objective(maths, X, y, weights, theta, C, penalty, perturbation=None):
    """``J_b(θ)`` and its gradient, one chunked pass over the rows.

    Parameters
    ----------
    maths : LogisticMaths
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Class indices.
    weights : ndarray of shape (n_samples,)
        ``sample_weight · class_weight[y]``.
    theta : ndarray of shape (n_params,)
    C : float
    penalty : ndarray of shape (n_params,)
        ``λ`` on the penalised coordinates, 0 elsewhere.
    perturbation : ndarray of shape (n_params,) or None
        ``b``; ``None`` for the unperturbed objective.

    Returns
    -------
    value : float
    gradient : ndarray of shape (n_params,), float64
    """
    theta = np.asarray(theta, dtype=np.float64)
    Theta = theta.reshape(maths.n_outputs, maths.width)
    W, intercept = maths._split(Theta)
    gradient = np.zeros_like(Theta)
    value = 0.0
    weights = np.asarray(weights, dtype=np.float64)
    for rows in row_chunks(X.shape[0], 8 * 4 * (maths.n_outputs + 1)):
        Xc, yc, wc = X[rows], y[rows], weights[rows]
        Z = np.asarray(Xc @ W.T, dtype=np.float64) + intercept
        if maths.n_outputs == 1:
            z, target = Z[:, 0], (yc == 1)
            # ℓ = log(1 + e^z) − y z = −log σ(z) (y = 1) or −log σ(−z) (y = 0).
            value += float(-wc @ log_expit(np.where(target, z, -z)))
            R = ((expit(z) - target) * wc)[:, None]
        else:
            log_p = log_softmax(Z, axis=1)
            index = np.arange(len(yc))
            value += float(-wc @ log_p[index, yc])
            R = np.exp(log_p)
            R[index, yc] -= 1.0
            R *= wc[:, None]
        part = Xc.T @ R
        gradient[:, : maths.n_features] += (
            part.toarray() if sp.issparse(part) else np.asarray(part)
        ).T
        if maths.fit_intercept:
            gradient[:, -1] += maths.intercept_scaling * R.sum(axis=0)
    value = C * value + 0.5 * float(penalty @ (theta * theta))
    gradient = C * gradient.ravel() + penalty * theta
    if perturbation is not None:
        value += float(perturbation @ theta)
        gradient = gradient + perturbation
    return value, gradient


def hessian_product(maths, X, weights, theta, C, penalty, vector):
    """``∇²J(θ) v`` (the perturbation is linear: it has no curvature), one pass."""
    Theta = np.asarray(theta, dtype=np.float64).reshape(maths.n_outputs, maths.width)
    V = np.asarray(vector, dtype=np.float64).reshape(Theta.shape)
    W, intercept = maths._split(Theta)
    VW, v_intercept = maths._split(V)
    out = np.zeros_like(Theta)
    for rows in row_chunks(X.shape[0], 8 * 4 * (maths.n_outputs + 1)):
        Xc, wc = X[rows], np.asarray(weights[rows], dtype=np.float64)
        Z = np.asarray(Xc @ W.T, dtype=np.float64) + intercept
        U = np.asarray(Xc @ VW.T, dtype=np.float64) + v_intercept  # logit moves
        if maths.n_outputs == 1:
            p = expit(Z)
            R = p * (1 - p) * U
        else:
            p = np.exp(log_softmax(Z, axis=1))
            R = p * (U - np.sum(p * U, axis=1, keepdims=True))
        R *= wc[:, None]
        part = Xc.T @ R
        out[:, : maths.n_features] += (
            part.toarray() if sp.issparse(part) else np.asarray(part)
        ).T
        if maths.fit_intercept:
            out[:, -1] += maths.intercept_scaling * R.sum(axis=0)
    return C * out.ravel() + penalty * np.asarray(vector, dtype=np.float64)


def perturbed_minimiser(
    maths,
    X,
    y,
    weights,
    theta0,
    C,
    penalty,
    perturbation,
    *,
    gtol,
    max_iter,
    newton_steps=20,
):
    """Minimise ``J_b`` with L-BFGS from ``theta0`` (scikit-learn's solution),
    then Newton steps to ``‖∇J_b‖ ≤ gtol`` (or the rounding floor).

    L-BFGS's iterates stay in ``theta0`` plus the span of the gradients, which
    never have a component along a flat direction: the solution keeps the
    warm start's position along it.

    Returns
    -------
    theta : ndarray of shape (n_params,), float64
    gradient_norm : float
        ``‖∇J_b(θ)‖`` at the returned parameters (float64).
    n_iter : int
    """

    def fun(theta):
        return perturbed_objective(
            maths, X, y, weights, theta, C, penalty, perturbation
        )

    result = minimize(
        fun,
        np.asarray(theta0, dtype=np.float64),
        jac=True,
        method="L-BFGS-B",
        # Close enough for Newton steps to converge fast; they finish below.
        options={"maxiter": int(max_iter), "gtol": float(gtol), "ftol": 1e-12},
    )
    theta = np.asarray(result.x, dtype=np.float64)
    value, gradient = fun(theta)
    # L-BFGS stalls where the objective's value stops changing in floating
    # point, well before its gradient does (and crawls on near-separable data):
    # Newton steps finish the job (conjugate gradient on Hessian-vector
    # products), each with a backtracking line search; a step is kept when it
    # decreases the objective (Armijo) or, once the value is at its rounding
    # floor, the gradient's norm.
    n_params = theta.size
    null = maths.null_directions()
    for _ in range(newton_steps):
        norm = np.linalg.norm(gradient)
        if not norm > gtol:
            break
        # The Hessian is singular along a flat direction: give it unit
        # curvature there (the gradient has no component along it).
        operator = LinearOperator(
            (n_params, n_params),
            matvec=lambda v, t=theta: (
                hessian_product(maths, X, weights, t, C, penalty, v)
                + null @ (null.T @ v)
            ),
            dtype=np.float64,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            step, _ = cg(operator, -gradient, rtol=1e-10, maxiter=min(n_params, 200))
        if null.size:
            step = step - null @ (null.T @ step)
        if not np.all(np.isfinite(step)):
            break
        slope = float(gradient @ step)
        for t in 0.5 ** np.arange(20):
            candidate = theta + t * step
            new_value, new_gradient = fun(candidate)
            if new_value <= value + 1e-4 * t * slope or (
                np.linalg.norm(new_gradient) < norm
            ):
                break
        else:
            break
        if not np.linalg.norm(new_gradient) < norm and not new_value < value:
            break
        theta, value, gradient = candidate, new_value, new_gradient
    return theta, float(np.linalg.norm(gradient)), int(result.nit)
