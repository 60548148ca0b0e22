"""The alternatives the paper compares SSSE with, as one small family of functions.

Every function takes a fitted erasable model and the rows to forget, and returns an
*updated copy* (the model passed in is never modified), so methods can be compared on
one fitted model. All but :func:`retrain` reuse the model's own engine: gradients,
bookkeeping and the removal of the rows from the stored curvature are those of
``partial_forget``; only the step differs. They accept an
:class:`~sklearn_ssse.ErasableMultiOutputClassifier` too (each output is updated).

========================  ============================================================
function                  step
========================  ============================================================
:func:`ssse_update`       ``-ε M⁻¹ ∇J_{-S}``: SSSE (Fisher) or influence (Hessian), as
                          the model was fitted. Fitted with ``block_size=1`` it is
                          **SSSE with a diagonal-only Fisher**.
:func:`gradient_ascent_update`  ``+η · C Σ_{i∈S} w_i ∇ℓ_i``: one step up the loss of the
                          forgotten rows.
:func:`scrubbing_update`  diagonal-Fisher Newton step plus Gaussian noise of standard
                          deviation ``σ · F_ii^{-1/4}`` (Golatkar et al., 2020).
:func:`retrain`           ``clone(model).fit`` on the remaining rows: the gold
                          standard, when the caller still has them.
========================  ============================================================
"""

import copy
from numbers import Real

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "gradient_ascent_update",
    "retrain",
    "scrubbing_update",
    "ssse_update",
]


# The arguments every update function shares.
_REQUEST = {
    "model": [object],
    "X": ["array-like", "sparse matrix"],
    "y": ["array-like"],
    "sample_weight": ["array-like", None],
}


def _updated_copy(model, X, y, sample_weight, step):
    """A copy of ``model`` after a request whose step is
    ``step(estimator, gradient, inverse, downdated_inverse)`` (None: SSSE)."""
    if hasattr(model, "estimators_"):  # multi-output: every output, on a copy
        check_is_fitted(model)
        Y = np.asarray(y)
        new = copy.deepcopy(model)
        # As in partial_forget: ε and leave_out come from the template estimator.
        request = {
            name: value
            for name, value in model.estimator.get_params(deep=False).items()
            if name in ("forget_scale", "leave_out")
        }
        for est in new.estimators_:
            est.set_params(**request)
        new.estimators_ = [
            _updated_copy(est, X, Y[:, j], sample_weight, step)
            for j, est in enumerate(new.estimators_)
        ]
        new.n_forgotten_ = model.n_forgotten_ + len(Y)
        return new
    check_is_fitted(model, "erasure_state_")
    return model._forget_copy(X, y, sample_weight, step)


@validate_params(_REQUEST, prefer_skip_nested_validation=True)
def ssse_update(model, X, y, *, sample_weight=None):
    """The model's own update (SSSE or influence), on a copy.

    Source: the SSSE paper (eq. 8); with ``curvature="hessian"`` the influence
    update of Koh & Liang (2017) / Guo et al. (2020). Assumes the model was fitted
    to (near) optimality and the deletion is small enough for one Newton step.

    Parameters
    ----------
    model : fitted erasable estimator
        E.g. :class:`~sklearn_ssse.ErasableLogisticRegression`; fitted with
        ``block_size=1`` this is SSSE with a diagonal-only Fisher.
    X : {array-like, sparse matrix} of shape (n_rows, n_features)
        The rows to forget.
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Their labels.
    sample_weight : array-like of shape (n_rows,), default=None
        Their sample weights in ``fit``.

    Returns
    -------
    updated : estimator
        An updated copy; ``model`` is unchanged.
    """
    return _updated_copy(model, X, y, sample_weight, None)


@validate_params(
    {**_REQUEST, "learning_rate": [Interval(Real, 0, None, closed="neither")]},
    prefer_skip_nested_validation=True,
)
def gradient_ascent_update(model, X, y, *, learning_rate, sample_weight=None):
    """One gradient-ascent step on the loss of the forgotten rows, on a copy.

    ``θ ← θ + η · (C Σ_{i∈S} w_i ∇ℓ_i(θ) − r₀)``, with ``r₀`` the gradient the solver
    left at ``fit`` (zero after the first request): the step of SSSE with the
    curvature replaced by ``η⁻¹ I``. The common first-order unlearning heuristic
    (e.g. Graves et al., 2021, "Amnesiac machine learning"; Thudi et al., 2022); it
    assumes nothing about curvature, so its learning rate must be tuned.

    Parameters
    ----------
    model : fitted erasable estimator
    X : {array-like, sparse matrix} of shape (n_rows, n_features)
        The rows to forget.
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Their labels.
    learning_rate : float
        The step size η > 0.
    sample_weight : array-like of shape (n_rows,), default=None
        Their sample weights in ``fit``.

    Returns
    -------
    updated : estimator
        An updated copy; ``model`` is unchanged.
    """
    return _updated_copy(
        model,
        X,
        y,
        sample_weight,
        lambda model, gradient, *_: -learning_rate * gradient,
    )


def _diagonal(inverse):
    if any(block.shape != (1, 1) for block in inverse.inverses):
        raise ValueError(
            "the scrubbing update needs a diagonal curvature: fit the model with "
            "block_size=1 (and curvature='fisher' for Golatkar et al.'s update)"
        )
    return np.concatenate([block.ravel() for block in inverse.inverses])


@validate_params(
    {
        **_REQUEST,
        "noise_scale": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "newton_step": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def scrubbing_update(
    model, X, y, *, noise_scale, random_state=None, newton_step=True, sample_weight=None
):
    """The noisy diagonal-Fisher "scrubbing" update (Golatkar et al., 2020), on a copy.

    ``θ ← θ − ε F⁻¹ ∇J_{-S} + σ · F^{-1/4} ξ`` with ``F`` the *diagonal* of the
    Fisher of the remaining rows (the model must be fitted with ``block_size=1``),
    ``ξ ~ N(0, I)`` and ``σ = noise_scale`` (their ``(λσ_h²)^{1/4}``). Source:
    Golatkar, Achille & Soatto, "Eternal Sunshine of the Spotless Net: Selective
    Forgetting in Deep Networks", CVPR 2020, "Fisher forgetting". It assumes the
    Fisher is well approximated by its diagonal and trades accuracy for noise that
    hides what was forgotten; the SSSE paper's experiments find the off-diagonal
    terms matter.

    Parameters
    ----------
    model : fitted erasable estimator
        Fitted with ``block_size=1``.
    X : {array-like, sparse matrix} of shape (n_rows, n_features)
        The rows to forget.
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Their labels.
    noise_scale : float
        σ ≥ 0; 0 gives SSSE with a diagonal Fisher.
    random_state : int, RandomState instance or None, default=None
        Seeds the noise.
    newton_step : bool, default=True
        Whether to take the diagonal Newton step before adding the noise (False:
        noise only, the variant the SSSE paper says Golatkar et al. end up using).
    sample_weight : array-like of shape (n_rows,), default=None
        Their sample weights in ``fit``.

    Returns
    -------
    updated : estimator
        An updated copy; ``model`` is unchanged.
    """
    rng = check_random_state(random_state)

    def step(estimator, gradient, inverse, downdated):
        diagonal = _diagonal(downdated)
        delta = np.zeros_like(gradient)
        if newton_step:
            delta -= estimator.forget_scale * downdated.apply(gradient)
        noise = rng.standard_normal(diagonal.shape).astype(gradient.dtype)
        return delta + noise_scale * np.sqrt(np.sqrt(diagonal)) * noise

    return _updated_copy(model, X, y, sample_weight, step)


@validate_params(
    {
        "model": [object],
        "X_remaining": ["array-like", "sparse matrix"],
        "y_remaining": ["array-like"],
        "sample_weight": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def retrain(model, X_remaining, y_remaining, *, sample_weight=None):
    """Retrain from scratch on the remaining rows: ``clone(model).fit(...)``.

    The gold standard every fidelity figure is measured against (same
    hyper-parameters); it needs all the remaining training data.

    Parameters
    ----------
    model : estimator
    X_remaining : {array-like, sparse matrix} of shape (n_remaining, n_features)
    y_remaining : array-like of shape (n_remaining,) or (n_remaining, n_outputs)
    sample_weight : array-like of shape (n_remaining,), default=None

    Returns
    -------
    refit : estimator
        A new fitted model; ``model`` is unchanged.
    """
    kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
    return clone(model).fit(X_remaining, y_remaining, **kwargs)
