"""Reconciliation: bring an erased model to the exact retrain on its remaining rows.

:func:`reconcile` takes Newton steps preconditioned by the stored inverse curvature,
with the exact gradient of the remaining rows (one chunked pass per step), then
re-bases the erasure state on those rows. :func:`preview_forget` computes a request
without applying it (a dry run). Derivations, costs and the privacy argument are in
``docs/reconcile.md``.
"""

import copy
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, logsumexp
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _array_api
from ._compat import _check_sample_weight
from ._maths import row_chunks
from ._state import RequestRecord, append_record, new_state_id, utc_now
from .base import ErasableMixin, _folded, erasure_lock, user_label
from .exceptions import (
    ErasureNumericalError,
    IncompatibleStateError,
    InvalidRequestError,
    RefitRecommendedError,
    RefitRecommendedWarning,
)

__all__ = ["ForgetPreview", "preview_forget", "reconcile"]

# Three steps in a row that leave more than this share of the gradient's norm: the
# stored curvature no longer describes the objective, the warm-started solver
# takes over.
CONTRACTION = 0.9
# Secant pairs kept to correct the stored inverse between steps.
_MEMORY = 10
# Halvings of a step that does not lower the objective enough (Armijo).
_BACKTRACKS = 8
# Rows per validated chunk of a memory-mapped array (when chunk_size is None).
_MEMMAP_CHUNK_BYTES = 32 * 2**20


# -- the remaining rows, as chunks -------------------------------------------------
class _Rows:
    """The remaining rows as validated chunks ``(X, y, w)`` (``y``: class indices).

    ``source`` is either ``(X, y, sample_weight)`` (arrays, sparse matrices or
    memory-mapped arrays: sliced in ``chunk_size`` rows when given or memory
    mapped, else validated once) or a callable returning, or a list/tuple
    holding, the chunks ``(X_chunk, y_chunk[, w_chunk])``; every pass reads them
    again. ``column`` selects one column of a 2-D ``y`` (a multi-output model's
    output); ``transform`` maps each ``X`` chunk first (a pipeline's fitted
    preprocessing).
    """

    def __init__(self, model, source, *, chunk_size=None, column=None, transform=None):
        self.model = model
        self.column = column
        self.transform = transform
        self.dtype = model._get_flat_params().dtype
        kind, *source = source
        if kind == "chunks":
            self.source = source[0]
            self._whole = None
            return
        X, y, w = source
        if y is None:
            raise InvalidRequestError("y_remaining is required with array input")
        size = chunk_size
        if size is None and isinstance(X, np.memmap):
            size = max(1, _MEMMAP_CHUNK_BYTES // max(1, X.shape[1] * X.itemsize))
        if size is None or size >= X.shape[0]:
            self._whole = self._validate(X, y, w)
        else:
            self._whole = None
            self.source = [
                (
                    X[start : start + size],
                    np.asarray(y)[start : start + size],
                    None if w is None else np.asarray(w)[start : start + size],
                )
                for start in range(0, X.shape[0], size)
            ]

    def _validate(self, X, y, w):
        if self.transform is not None:
            X = self.transform(X)
        y = np.asarray(y)
        if self.column is not None:
            if y.ndim != 2:
                raise InvalidRequestError(
                    f"y_remaining must be 2-D for a multi-output model, got {y.ndim}-D"
                )
            y = y[:, self.column]
        try:
            X, y = validate_data(
                self.model,
                X,
                y,
                reset=False,
                accept_sparse="csr",
                dtype=self.dtype,
                order="C",
                ensure_min_samples=0,
            )
            w = _check_sample_weight(w, X, dtype=X.dtype, allow_all_zero_weights=True)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        classes = _array_api.to_numpy(self.model.classes_)
        index = np.minimum(np.searchsorted(classes, y), classes.shape[0] - 1)
        unseen = classes[index] != y
        if np.any(unseen):
            labels = ", ".join(user_label(v) for v in np.unique(y[unseen]))
            raise InvalidRequestError(
                f"y_remaining has labels not seen in fit: {labels}"
            )
        return X, index, w

    def chunks(self):
        """One pass over the validated chunks."""
        if self._whole is not None:
            yield self._whole
            return
        chunks = self.source() if callable(self.source) else self.source
        for chunk in chunks:
            if not isinstance(chunk, tuple) or len(chunk) not in (2, 3):
                raise InvalidRequestError(
                    "each chunk must be a tuple (X, y) or (X, y, sample_weight)"
                )
            yield (
                self._validate(*chunk)
                if len(chunk) == 3
                else self._validate(*chunk, None)
            )

    def whole(self):
        """All the rows at once (the curvature's rebuild and the fallback need
        them together, as ``fit`` does)."""
        if self._whole is not None:
            return self._whole
        parts = list(self.chunks())
        stack = sp.vstack if any(sp.issparse(p[0]) for p in parts) else np.vstack
        X = stack([p[0] for p in parts])
        if sp.issparse(X):
            X = X.tocsr()
        y = np.concatenate([p[1] for p in parts])
        return X, y, np.concatenate([p[2] for p in parts])


# -- the exact gradient of the remaining objective ---------------------------------
class _Objective:
    """``∇J_rem`` at any parameters, one pass over the rows (``docs/reconcile.md``)."""

    def __init__(self, model, rows, state):
        self.model = model
        self.rows = rows
        self.maths = model._erasure_maths()
        self.n_classes = model.classes_.shape[0]
        self.active = np.ones(self.n_classes, dtype=bool)
        self.C, self.strength, self.penalized = model._objective_scaling()
        self.l1 = float(model._l1_share()) if hasattr(model, "_l1_share") else 0.0
        self.class_weight = np.asarray(
            model._class_weights(state.class_weight_sums, self.active),
            dtype=np.float64,
        )
        self.passes = 0

    def evaluate(self, theta, counted=False):
        """``(per-class gradient sums of the data term, objective value)``, in one
        pass over the rows for the logistic models (two for the MLP); with
        ``counted``, the class counts and weight sums of :meth:`sums` after them."""
        from ._logistic_maths import LogisticMaths

        if not isinstance(self.maths, LogisticMaths):
            sums, counts, weight_sums = self.sums(theta)
            value = self.value(theta)
            return (sums, value, counts, weight_sums) if counted else (sums, value)
        maths = self.maths
        W, b = maths._split(theta.reshape(maths.n_outputs, maths.width))
        out = np.zeros((self.n_classes, maths.n_outputs, maths.width), theta.dtype)
        total = 0.0
        counts = np.zeros(self.n_classes, dtype=np.int64)
        weight_sums = np.zeros(self.n_classes)
        row_bytes = 4 * theta.dtype.itemsize * maths.n_outputs + 8 * self.n_classes
        for X, y, w in self.rows.chunks():
            if counted:
                counts += np.bincount(y[w > 0], minlength=self.n_classes)
                weight_sums += np.bincount(y, weights=w, minlength=self.n_classes)
            for rows in row_chunks(X.shape[0], row_bytes):
                Xc, yc, wc = X[rows], y[rows], w[rows]
                Z = np.asarray(Xc @ W.T, dtype=np.float64) + b
                if maths.n_outputs == 1:
                    target = (yc == 1).astype(np.float64)
                    losses = np.logaddexp(0.0, Z[:, 0]) - target * Z[:, 0]
                    R = (expit(Z[:, 0]) - target)[:, None]
                else:
                    normaliser = logsumexp(Z, axis=1)
                    losses = normaliser - Z[np.arange(len(yc)), yc]
                    R = np.exp(Z - normaliser[:, None])
                    R[np.arange(len(yc)), yc] -= 1.0
                maths._add_class_sums(out, Xc, yc, R, wc)
                total += float((wc * self.class_weight[yc]) @ losses)
        self.passes += 1
        sums = out.reshape(self.n_classes, -1)
        value = self._with_penalty(total, theta)
        return (sums, value, counts, weight_sums) if counted else (sums, value)

    def value(self, theta):
        """The objective ``C Σ w_i ℓ_i + ½ λ ‖θ_P‖² (+ r ‖θ_P‖₁)``."""
        total = 0.0
        for X, y, w in self.rows.chunks():
            if X.shape[0]:
                losses = self.maths.losses(X, y, theta, self.active)
                total += float((w * self.class_weight[y]) @ losses)
        self.passes += 1
        return self._with_penalty(total, theta)

    def _with_penalty(self, total, theta):
        theta = np.asarray(theta, dtype=np.float64)
        value = self.C * total
        value += 0.5 * self.strength * float(self.penalized @ np.square(theta))
        return value + self.l1 * float(self.penalized @ np.abs(theta))

    def sums(self, theta):
        """Per-class gradient sums of the data term, class counts, weight sums."""
        sums = np.zeros((self.n_classes, self.maths.n_params))
        counts = np.zeros(self.n_classes, dtype=np.int64)
        weight_sums = np.zeros(self.n_classes)
        for X, y, w in self.rows.chunks():
            if X.shape[0] == 0:
                continue
            sums += self.maths.gradient_sums(
                X, y, w, theta, self.active, self.n_classes
            )
            counts += np.bincount(y[w > 0], minlength=self.n_classes)
            weight_sums += np.bincount(y, weights=w, minlength=self.n_classes)
        self.passes += 1
        return sums, counts, weight_sums

    def residual(self, theta, sums):
        """The objective's gradient as ``fit`` stores it (L1: ``r · sign θ``)."""
        gradient = self.C * (self.class_weight @ sums)
        gradient = gradient + self.strength * self.penalized * theta
        if self.l1:
            gradient = gradient + self.l1 * np.sign(theta) * self.penalized
        return gradient

    def optimality(self, theta, sums):
        """The minimum-norm subgradient: zero exactly at the remaining optimum."""
        smooth = self.C * (self.class_weight @ sums)
        smooth = smooth + self.strength * self.penalized * theta
        if not self.l1:
            return smooth
        at_zero = (theta == 0) & (self.penalized > 0)
        out = smooth + self.l1 * np.sign(theta) * self.penalized
        shrunk = np.sign(smooth) * np.maximum(np.abs(smooth) - self.l1, 0.0)
        return np.where(at_zero, shrunk, out)

    def floor(self, weight_sums):
        """The rounding level of the data term's gradient (an absolute tolerance)."""
        return 1e-12 * max(self.C * float(self.class_weight @ weight_sums), 1.0)


# -- reconcile ---------------------------------------------------------------------
@dataclass(frozen=True)
class ReconcileReport:
    """What :func:`reconcile` did (also kept in the request log, without the times).

    Attributes
    ----------
    steps : int
        Newton steps taken with the stored curvature.
    fallback : bool
        Whether the warm-started solver finished the job.
    gradient_norm : float
        ``‖∇J_rem‖`` (minimum-norm subgradient with L1) at the published parameters.
    target : float
        The tolerance it was compared with: ``tol · ‖∇J_rem(θ₀)‖``, at least the
        rounding level of the data term.
    rebuilt_curvature : bool
        Whether the curvature was rebuilt at the new parameters.
    passes : int
        Passes over the remaining rows (gradients; the rebuild's not counted).
    """

    steps: int
    fallback: bool
    gradient_norm: float
    target: float
    rebuilt_curvature: bool
    passes: int


def reconcile(
    model,
    X_remaining,
    y_remaining=None,
    sample_weight=None,
    *,
    tol=1e-6,
    max_steps=20,
    rebuild_curvature=True,
    chunk_size=None,
):
    """Bring an erased model to the exact retrain on its remaining rows, in place.

    From the published parameters ``θ``, Newton steps preconditioned by the
    stored inverse curvature, ``θ ← θ − M⁻¹ ∇J_rem(θ)``, each with the exact
    gradient of the remaining objective (one pass over the rows), until
    ``‖∇J_rem‖ ≤ tol · ‖∇J_rem(θ₀)‖`` (``θ₀``: the model as given; never below
    the rounding level of the data term). When a step does not shrink the
    gradient by at least a factor 0.9, or after ``max_steps``, the estimator's
    own solver finishes from the best point, warm-started (a tight tolerance for
    logistic models). The erasure state is then re-based on the remaining rows:
    with ``rebuild_curvature=True`` it is the state a ``fit`` on them would
    store; with ``False`` only the point, the residual and the certificate are
    re-based and the (downdated) curvature is kept. A record with ``n_rows=0``
    and ``certificate["reconciled"]`` is appended to the request log. See
    ``docs/reconcile.md``.

    Parameters
    ----------
    model : fitted erasable estimator or Pipeline
        An :class:`~sklearn_ssse.ErasableLogisticRegression`,
        :class:`~sklearn_ssse.ErasableLogisticRegressionCV`,
        :class:`~sklearn_ssse.ErasableMLPClassifier`,
        :class:`~sklearn_ssse.ErasableMultiOutputClassifier` (every output), or a
        :class:`~sklearn.pipeline.Pipeline` ending in one (the raw rows are
        transformed by its fitted preprocessing).
    X_remaining : {array-like, sparse matrix, memmap} or callable or list
        All the training rows not forgotten, as given to ``fit``; or the chunks
        ``(X, y[, sample_weight])`` of them, as a list or a callable returning
        an iterable (called once per pass), with ``y_remaining=None``.
    y_remaining : array-like of shape (n_remaining,) or (n_remaining, n_outputs)
        Their labels (``None`` with chunks).
    sample_weight : array-like of shape (n_remaining,), default=None
        Their sample weights in ``fit``.
    tol : float, default=1e-6
        Stop when the gradient's norm is this share of its norm at the start.
    max_steps : int, default=20
        Newton steps at most before the warm-started solver takes over.
    rebuild_curvature : bool, default=True
        Rebuild the stored curvature at the new parameters (the cost of the
        erasure-state build of ``fit``); ``False`` keeps the downdated one
        (an L1 model whose active set changed is rebuilt all the same).
    chunk_size : int, default=None
        Rows per validated chunk of array input (memory-mapped arrays: 32 MiB
        chunks by default; other arrays are validated whole).

    Returns
    -------
    model : object
        The same object, updated. On any error it is left unchanged.

    Raises
    ------
    InvalidRequestError
        The rows are not the remaining rows: per-class counts differ from the
        model's, labels unseen, wrong shape.
    IncompatibleStateError
        The stored state cannot serve requests (see ``partial_forget``), or the
        model is of a kind reconcile does not cover (certified removal, array
        API state).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.reconcile import reconcile
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> model = ErasableLogisticRegression().fit(X, y)
    >>> model = reconcile(model.partial_forget(X[:50], y[:50]), X[50:], y[50:])
    >>> record = model.request_records_[-1]
    >>> record.n_rows, record.certificate["reconciled"]
    (0, True)
    >>> bool((model.erasure_state_.point == model.erasure_state_.coefficients).all())
    True
    """
    options = dict(tol=tol, max_steps=max_steps, rebuild_curvature=rebuild_curvature)
    if isinstance(model, Pipeline):
        return _reconcile_pipeline(
            model, X_remaining, y_remaining, sample_weight, chunk_size, options
        )
    from .linear_model import ErasableLogisticRegressionCV
    from .multioutput import ErasableMultiOutputClassifier

    if isinstance(model, ErasableMultiOutputClassifier):
        return _reconcile_multioutput(
            model, X_remaining, y_remaining, sample_weight, chunk_size, options
        )
    if isinstance(model, ErasableLogisticRegressionCV):
        return _reconcile_cv(
            model, X_remaining, y_remaining, sample_weight, chunk_size, options
        )
    _check_reconcilable(model)
    with erasure_lock(model):
        source = _source(X_remaining, y_remaining, sample_weight)
        rows = _Rows(model, source, chunk_size=chunk_size)
        attributes, _ = _reconciled(model, rows, **options)
        model._publish(attributes)
    return model


def _source(X, y, sample_weight):
    """``("chunks", chunks)`` or ``("arrays", X, y, sample_weight)``."""
    if callable(X) or (isinstance(X, (list, tuple)) and X and isinstance(X[0], tuple)):
        if y is not None or sample_weight is not None:
            raise InvalidRequestError(
                "with chunks, give y and sample_weight inside each chunk "
                "(y_remaining and sample_weight must be None)"
            )
        return ("chunks", X)
    if hasattr(X, "__next__"):
        raise InvalidRequestError(
            "the remaining rows must be arrays (X_remaining, y_remaining), a list "
            "of chunks (X, y[, sample_weight]), or a callable returning an "
            "iterable of chunks: a one-shot iterator cannot be read several times"
        )
    return ("arrays", X, y, sample_weight)


def _check_reconcilable(model):
    if not isinstance(model, ErasableMixin):
        raise TypeError(
            f"{type(model).__name__} is not an erasable estimator: give an "
            "ErasableLogisticRegression(CV), ErasableMLPClassifier, "
            "ErasableMultiOutputClassifier or a Pipeline ending in one"
        )
    check_is_fitted(model, "erasure_state_")


def _checked_state(model):
    """The published state, after the checks ``partial_forget`` makes first."""
    state = model._checked_erasure_state()
    if state.curvature_params.get("removal_noise") is not None:
        raise IncompatibleStateError(
            "a certified-removal model (removal_noise) minimises a perturbed "
            "objective whose noise it does not keep: reconcile cannot find its "
            "optimum; refit it on the remaining rows"
        )
    if _array_api.namespace(state.coefficients)[0] is not None:
        raise IncompatibleStateError(
            "reconcile works on NumPy states; this model's state is on an array "
            "API device"
        )
    theta = model._get_flat_params()
    if theta.shape != state.coefficients.shape or not np.array_equal(
        theta, state.coefficients
    ):
        raise IncompatibleStateError(
            "the fitted parameters were modified since the last fit or request; "
            "the stored state no longer describes this model: call fit again"
        )
    return state, theta


def _reconciled(model, rows, *, tol, max_steps, rebuild_curvature):
    """``(attributes to publish, report)``; nothing is modified."""
    state, theta0 = _checked_state(model)
    if not np.all(state.class_counts > 0):
        raise IncompatibleStateError(
            "a class lost all its training rows: a refit on the remaining rows has "
            "fewer classes than this model; refit it instead"
        )
    objective = _Objective(model, rows, state)
    _, index = model._step_maths(objective.maths, state.point)
    inverse = state.curvature
    dtype = theta0.dtype

    # 1. The gradient at the start, and the check that these are the remaining rows.
    theta = theta0.astype(np.float64)
    sums, value, counts, weight_sums = objective.evaluate(theta0, counted=True)
    if not np.array_equal(counts, state.class_counts):
        classes = _array_api.to_numpy(model.classes_)
        details = ", ".join(
            f"class {user_label(classes[a])}: {counts[a]} given, "
            f"{state.class_counts[a]} remain"
            for a in np.flatnonzero(counts != state.class_counts)
        )
        raise InvalidRequestError(
            "these are not the model's remaining rows (rows of positive weight "
            f"per class differ: {details}). The model is unchanged."
        )
    gradient = objective.optimality(theta, sums)
    norm = float(np.linalg.norm(gradient))
    target = max(float(tol) * norm, objective.floor(weight_sums))

    # 2. Newton steps with the stored inverse curvature, corrected by the
    # secant pairs of the steps already taken (L-BFGS's two loops, M⁻¹ as the
    # initial inverse: a pure Newton step first), with a backtracking line
    # search on the objective. The MLP (not convex) also stops when a step no
    # longer lowers the objective by ``tol`` of itself, and never falls back.
    def local(vector):
        return vector if index is None else vector[index]

    convex = not hasattr(objective.maths, "losses")  # the MLP's is not
    steps, fallback, slow = 0, False, 0
    pairs = []
    residual = local(objective.residual(theta, sums))
    while norm > target:
        if steps >= max_steps:
            fallback = convex
            break
        direction = -_two_loop(inverse, pairs, residual)
        slope = float(residual @ direction)
        # Backtrack (halving) until the objective goes down enough (Armijo):
        # the stored curvature is an older point's, and after many requests a
        # full step can overshoot.
        length, accepted = 1.0, False
        for _ in range(_BACKTRACKS if slope < 0 else 0):
            trial = theta.copy()
            if index is None:
                trial += length * direction
            else:
                trial[index] += length * direction
            trial_sums, trial_value = objective.evaluate(trial.astype(dtype))
            trial_norm = float(np.linalg.norm(objective.optimality(trial, trial_sums)))
            # Near the optimum the decrease is below the value's rounding: the
            # gradient's norm decides there.
            flat = -length * slope <= 1e-10 * abs(value)
            accepted = np.isfinite(trial_value) and (
                trial_value <= value + 1e-4 * length * slope
                or (flat and trial_norm < norm)
            )
            if accepted:
                break
            length /= 2
        if not accepted:  # no step lowers it: as stationary as M can tell
            fallback = convex
            break
        steps += 1
        slow = slow + 1 if trial_norm > CONTRACTION * norm else 0
        trial_residual = local(objective.residual(trial, trial_sums))
        change = trial_residual - residual
        curvature = length * float(direction @ change)
        if curvature > 0:
            pairs = [
                *pairs[-(_MEMORY - 1) :],
                (length * direction, change, 1.0 / curvature),
            ]
        decrease = value - trial_value
        theta, sums, norm, residual = trial, trial_sums, trial_norm, trial_residual
        value = trial_value
        if not convex and decrease <= float(tol) * abs(value):
            break  # the MLP: the objective no longer goes down
        if convex and slow >= 3 and norm > target:
            fallback = True  # three steps in a row that barely contracted
            break

    # 3. The warm-started solver, when the steps stopped contracting.
    if fallback:
        theta = _warm_solve(model, rows, theta.astype(dtype)).astype(np.float64)
        sums, _, _ = objective.sums(theta.astype(dtype))
        norm = float(np.linalg.norm(objective.optimality(theta, sums)))
    theta = _without_null_component(model, objective.maths, theta, theta0)
    theta_new = theta.astype(dtype)
    if not np.all(np.isfinite(theta_new)):
        raise ErasureNumericalError(
            "reconcile made the parameters non-finite; the model is unchanged"
        )

    # 4. Re-base the state on the remaining rows. (An L1 model whose active set
    # changed needs the curvature of the new one: it is rebuilt.)
    if index is not None and not rebuild_curvature:
        rebuild_curvature = not np.array_equal(
            model._movable_mask(theta_new), model._movable_mask(state.point)
        )
    fresh = None
    if rebuild_curvature:
        fresh = model._snapshot()
        fresh.__dict__.update(model._flat_params_attributes(theta_new))
        X, y, w = rows.whole()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the cost warnings of fit
            fresh._fit_erasure_state(X, y, w)
        base = fresh.erasure_state_
    else:
        # (The gradient is the same along the flat directions: no new pass.)
        residual = objective.residual(theta, sums)
        base = _rebased(state, theta_new, residual, sums)
    report = ReconcileReport(
        steps=steps,
        fallback=fallback,
        gradient_norm=norm,
        target=target,
        rebuilt_curvature=bool(rebuild_curvature),
        passes=objective.passes,
    )
    new_id = new_state_id()
    budget = getattr(model, "certificate_budget", None)
    record = RequestRecord(
        index=state.version + 1,
        time=utc_now(),
        n_rows=0,
        rows_per_class={},
        forget_scale=float(getattr(model, "forget_scale", 1.0)),
        curvature=str(model._curvature_kind()),
        leave_out=bool(getattr(model, "leave_out", True)),
        step_norm=float(np.linalg.norm(theta_new - theta0)),
        certificate={
            "reconciled": True,
            "steps": steps,
            "fallback": fallback,
            "rebuilt_curvature": bool(rebuild_curvature),
            "gradient_norm": norm,
            "tolerance": float(tol),
        },
        n_params=int(objective.maths.n_params),
        n_remaining=int(state.class_counts.sum()),
        budget=None if budget is None else float(budget),
        within_budget=None,
        state_id=new_id,
    )
    new_state = base.replace(
        state_id=new_id,
        parent_id=state.state_id,
        records=append_record(state.records, record),
        n_forgotten=state.n_forgotten,
        coefficients=theta_new,
    )
    attributes = model._flat_params_attributes(theta_new)
    attributes["erasure_state_"] = new_state
    if fresh is not None and "curvature_structure_" in fresh.__dict__:
        attributes["curvature_structure_"] = fresh.__dict__["curvature_structure_"]
    return attributes, report


def _two_loop(inverse, pairs, gradient):
    """``H g`` with ``H`` the L-BFGS inverse built on ``M⁻¹`` from ``pairs``."""
    q = np.asarray(gradient, dtype=np.float64).copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * float(s @ q)
        q -= alpha * y
        alphas.append(alpha)
    r = np.asarray(inverse.apply(q.astype(inverse.dtype)), dtype=np.float64)
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        r += s * (alpha - rho * float(y @ r))
    return r


def _without_null_component(model, maths, theta, theta0):
    """``theta`` with its component along the objective's flat directions (a
    softmax's common intercept shift) as a refit leaves it: zero for the logistic
    models (scikit-learn's solvers centre the intercepts), the start's for others.
    """
    null = maths.null_directions()
    if not null.shape[1]:
        return theta
    from .linear_model import ErasableLogisticRegression

    reference = 0.0 if isinstance(model, ErasableLogisticRegression) else theta0
    return theta - null @ (null.T @ (theta - reference))


def _rebased(state, theta_new, residual, sums):
    """The state with the kept curvature, re-based at ``theta_new``.

    The point becomes ``theta_new`` (the fit point ``θ*`` is gone), the residual
    the measured gradient there, the certificate starts again from it (its
    running bounds at zero, as at ``fit``), and pending low-rank factors and
    removed rows are folded in (they are directions of erased rows).
    """
    cert = state.certificate_state
    if cert is not None:
        cert = cert.folded().replace(
            cumulative_bound=0.0, nothing_bound=0.0, gram_drift=None, drift_at=None
        )
    class_sums = sums if state.class_gradient_sums is not None else None
    return state.replace(
        curvature=_folded(state.curvature),
        point=theta_new.copy(),
        residual_gradient=residual.astype(theta_new.dtype),
        class_gradient_sums=(
            None if class_sums is None else class_sums.astype(theta_new.dtype)
        ),
        certificate_state=cert,
    )


def _warm_solve(model, rows, theta):
    """The parameters the estimator's own solver reaches on the rows from ``theta``.

    The solver of the scikit-learn class the estimator extends, on a copy with
    ``warm_start=True`` (no erasure state is built): a tight tolerance
    (``tol=1e-10``) for the logistic models, the MLP's own settings (to its
    noise floor).
    """
    from .linear_model import ErasableLogisticRegression

    fresh = object.__new__(type(model))  # a deep copy, without the state
    fresh.__dict__ = copy.deepcopy(
        {k: v for k, v in model.__dict__.items() if k != "erasure_state_"}
    )
    fresh.__dict__.update(model._flat_params_attributes(theta))
    params = {"warm_start": True}
    if isinstance(model, ErasableLogisticRegression):
        params.update(
            tol=min(float(model.tol), 1e-10), max_iter=max(model.max_iter, 10000)
        )
    fresh.set_params(**params)
    solver = next(
        klass.fit
        for klass in type(model).__mro__
        if not issubclass(klass, ErasableMixin) and "fit" in vars(klass)
    )
    X, y, w = rows.whole()
    y_user = _array_api.to_numpy(model.classes_)[y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence of the tight solve
        solver(fresh, X, y_user, sample_weight=w)
    return fresh._get_flat_params()


def _reconcile_cv(model, X, y, sample_weight, chunk_size, options):
    from .linear_model import _ERASURE_PARAMS

    check_is_fitted(model, "final_estimator_")
    final = model.final_estimator_
    if final is None:
        raise IncompatibleStateError(
            "this model was fitted with refit=False: it has no final model to reconcile"
        )
    with erasure_lock(final):
        final.set_params(**{name: getattr(model, name) for name in _ERASURE_PARAMS})
        rows = _Rows(final, _source(X, y, sample_weight), chunk_size=chunk_size)
        attributes, _ = _reconciled(final, rows, **options)
        final._publish(attributes)
        model.__dict__.update(
            coef_=final.coef_,
            intercept_=final.intercept_,
            class_counts_=final.class_counts_,
        )
    return model


def _reconcile_multioutput(model, X, y, sample_weight, chunk_size, options):
    from ._multioutput_batch import stack_outputs

    check_is_fitted(model, "estimators_")
    source = _source(X, y, sample_weight)
    with erasure_lock(model):
        planned = []
        for o, est in enumerate(model.estimators_):
            _check_reconcilable(est)
            rows = _Rows(est, source, chunk_size=chunk_size, column=o)
            planned.append(_reconciled(est, rows, **options)[0])
        for est, attributes in zip(model.estimators_, planned):
            est._publish(attributes)
        stack_outputs(model.estimators_)  # batched requests again
    return model


def _reconcile_pipeline(pipe, X, y, sample_weight, chunk_size, options):
    check_is_fitted(pipe)
    final = pipe.steps[-1][1]
    if not hasattr(final, "partial_forget"):
        raise TypeError(
            f"the final step {pipe.steps[-1][0]!r} ({type(final).__name__}) is not "
            "erasable"
        )
    preprocessing = pipe[:-1]
    source = _source(X, y, sample_weight)
    if source[0] == "arrays":
        X = preprocessing.transform(X)  # the rows as the final step saw them
    else:
        chunks = source[1]

        def X():
            for chunk in chunks() if callable(chunks) else chunks:
                yield (preprocessing.transform(chunk[0]), *chunk[1:])

    reconcile(final, X, y, sample_weight, chunk_size=chunk_size, **options)
    return pipe


# -- the dry run -------------------------------------------------------------------
@dataclass(frozen=True)
class ForgetPreview:
    """What a ``partial_forget`` request would do (:func:`preview_forget`).

    Attributes
    ----------
    n_rows : int
        Rows the request names.
    step_norm : float
        Euclidean norm of the parameter change it would make.
    certificate : dict or None
        The request's certificate, as its record would hold it.
    budget : float or None
        The model's ``certificate_budget``.
    within_budget : bool or None
        Whether the certified bound would stay within it (``None``: not certified
        or no budget).
    crosses_budget : bool
        Whether the request would cross the budget (it would warn, or raise with
        ``on_budget="raise"``).
    reconcile_recommended : bool
        Whether :func:`reconcile` is recommended after it: the budget would be
        crossed, or the request cannot be certified although the model keeps a
        certificate.
    elapsed_s : float
        Time the computation took: what the real request would cost.
    """

    n_rows: int
    step_norm: float
    certificate: dict | None
    budget: float | None
    within_budget: bool | None
    crosses_budget: bool
    reconcile_recommended: bool
    elapsed_s: float


def preview_forget(model, X, y, sample_weight=None):
    """Check and compute a ``partial_forget`` request without applying it.

    The request is validated and computed exactly as ``model.partial_forget``
    would (same errors), on a snapshot of the model: nothing is changed, nothing
    warns.

    Parameters
    ----------
    model : fitted erasable estimator
        An :class:`~sklearn_ssse.ErasableLogisticRegression`,
        :class:`~sklearn_ssse.ErasableLogisticRegressionCV` or
        :class:`~sklearn_ssse.ErasableMLPClassifier`.
    X : {array-like, sparse matrix} of shape (n_rows, n_features)
        The rows to forget.
    y : array-like of shape (n_rows,)
        Their labels.
    sample_weight : array-like of shape (n_rows,), default=None
        Their sample weights in ``fit``.

    Returns
    -------
    preview : ForgetPreview

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.reconcile import preview_forget
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = ErasableLogisticRegression().fit(scale(X), y)
    >>> preview = preview_forget(model, scale(X)[:5], y[:5])
    >>> preview.n_rows, preview.crosses_budget, model.n_forgotten_
    (5, False, 0)
    """
    from .linear_model import ErasableLogisticRegressionCV

    if isinstance(model, ErasableLogisticRegressionCV):
        check_is_fitted(model, "final_estimator_")
        if model.final_estimator_ is None:
            raise IncompatibleStateError(
                "refit=False: there is no model to forget from"
            )
        model = model.final_estimator_
    _check_reconcilable(model)
    start = time.perf_counter()
    with erasure_lock(model):
        view = model._snapshot()
        view.__dict__["on_budget"] = "warn"  # the view's own dict: model untouched
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RefitRecommendedWarning)
            request = view._prepare_forget(X, y, sample_weight)
            if request is None:
                return ForgetPreview(0, 0.0, None, None, None, False, False, 0.0)
            try:
                attributes = view._compute_forget(request)
            except RefitRecommendedError:  # pragma: no cover - on_budget is "warn"
                raise
    elapsed = time.perf_counter() - start
    record = attributes["erasure_state_"].records[-1]
    certificate = record.certificate
    crosses = record.within_budget is False
    uncertified = certificate is not None and (
        certificate.get("cumulative_gradient_bound") is None
        or not np.isfinite(certificate.get("cumulative_gradient_bound"))
    )
    return ForgetPreview(
        n_rows=record.n_rows,
        step_norm=record.step_norm,
        certificate=certificate,
        budget=record.budget,
        within_budget=record.within_budget,
        crosses_budget=crosses,
        reconcile_recommended=bool(crosses or uncertified),
        elapsed_s=elapsed,
    )
