"""The erasure engine shared by every erasable estimator.

:class:`ErasableMixin` gives an estimator ``partial_forget`` and the fit-time state it
needs. It is model-agnostic: the estimator supplies its model family's maths
(:class:`~sklearn_ssse._maths.ModelMaths`) and a handful of small hooks; the linear
algebra lives behind :class:`~sklearn_ssse._curvature.CurvatureInverse`.

The update (METHOD.md, eq. 1) for a request ``S``::

    θ ← θ − ε · M⁻¹ · ∇J_{-S}(θ),   ∇J_{-S}(θ) ≈ r₀ − C Σ_{i∈S} w_i ∇ℓ_i(θ)

with ``M = λ·P + C Σ_i w_i K_i(θ*)`` the stored curvature (Hessian or Fisher, at the
fitted ``θ*``) and ``r₀`` the objective gradient the solver left at ``θ*`` (cancelled
at the first request, zero afterwards). The rows of ``S`` are then taken out of ``M``
by a rank-``k`` Woodbury downdate (or a dense re-solve when ``k`` is large); with
``leave_out=True`` the step uses the downdated ``M``.

**State and concurrency.** Everything a request reads or writes is one immutable
:class:`~sklearn_ssse._state.ErasureState` in ``erasure_state_``. A request runs
under the estimator's lock (so concurrent requests are serialised and none is lost),
computes the new state and parameters without touching the estimator, and publishes
them with a single update of the estimator's ``__dict__``. Predictions read one
snapshot of the ``__dict__`` (:meth:`ErasableMixin._snapshot`), so a reader sees the
model before a request or after it, never a mix of the two.
"""

import contextlib
import inspect
import operator
import sys
import threading
import warnings
import weakref
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.utils._metadata_requests import _routing_enabled
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _array_api
from . import curvature_registry as _structures  # noqa: F401  (registers them all)
from ._active_set import ActiveSetMaths
from ._compat import _check_sample_weight
from ._curvature import BlockDiagonalInverse, block_bounds
from ._curvature_cg import rows_product
from ._curvature_structures import (
    COSTLY_REQUEST_RATIO,
    build_cg_curvature,
    class_coupling_rule,
    downdate_rows,
    request_cost_ratio,
    select_structure,
)
from ._linalg import (
    SPAN_MAX_ROWS,
    canonical_csr,
    row_span,
    weighted_column_squares,
)
from ._state import (
    STATE_FORMAT_VERSION,
    ErasureState,
    RequestRecord,
    append_record,
    check_request_id,
    new_state_id,
    utc_now,
)
from .certificate import (
    distance_bound,
    fit_certificate_state,
    request_certificate,
    uncertified,
)
from .exceptions import (
    CostlyErasureWarning,
    ErasureNumericalError,
    IncompatibleStateError,
    InconsistentStateVersionWarning,
    InvalidRequestError,
    RefitRecommendedError,
    RefitRecommendedWarning,
    SealedPointWarning,
)
from .ledger import row_fingerprints

__all__ = ["ErasableMixin", "PartialForgetRequestMixin"]

# Parameters that shape the stored curvature: changing them needs a new fit.
CURVATURE_PARAMS = (
    "curvature",
    "damping",
    "block_size",
    "fisher_batch_size",
    "curvature_structure",
)

# One re-entrant lock per estimator object, made on first use (``__init__`` only
# stores parameters) and kept outside the estimator, so that it is never pickled,
# copied or seen in ``vars(estimator)``; it goes away with the estimator.
_LOCKS = weakref.WeakKeyDictionary()
_LOCK_GUARD = threading.Lock()
# The parameter values each estimator's last request validated (same keeping).
_VALIDATED = weakref.WeakKeyDictionary()
# Each estimator's erasure key (set_erasure_key): in memory only, never pickled.
_KEYS = weakref.WeakKeyDictionary()


def _seal_key_of(estimator):
    """The key that will seal ``estimator``'s fit point: its own, or random."""
    import secrets

    key = _KEYS.get(estimator)
    return key if key is not None else secrets.token_bytes(32)


def request_snapshot(estimator):
    """The estimator as one request sees it: a shallow copy of its ``__dict__``
    taken once (under the request's lock), its parameters validated as ``fit``
    validates them.

    Every parameter a request uses (``forget_scale``, ``C``, ``leave_out``, ...)
    is read from this copy, so a concurrent ``set_params`` can neither change a
    parameter half-way through a request nor slip past its validation: the
    request uses the values it validated, or refuses them. scikit-learn's
    validation costs more than a one-row request, so it runs only when one of
    the values is another object than at the estimator's last request.
    """
    view = object.__new__(type(estimator))
    view.__dict__ = estimator.__dict__.copy()
    if estimator in _KEYS:
        _KEYS[view] = _KEYS[estimator]
    if not get_config()["skip_parameter_validation"]:
        values = tuple(map(view.__dict__.get, view._parameter_constraints))
        last = _VALIDATED.get(estimator)
        if last is None or not all(map(operator.is_, values, last)):
            view._validate_params()  # InvalidParameterError, as fit raises
            _VALIDATED[estimator] = values
    return view


def erasure_lock(estimator):
    """The re-entrant lock that serialises requests (and fits) of ``estimator``."""
    with _LOCK_GUARD:
        lock = _LOCKS.get(estimator)
        if lock is None:
            lock = _LOCKS[estimator] = threading.RLock()
    return lock


def user_label(value):
    """A label as the user wrote it (``1``, ``'cat'``), not ``np.int64(1)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _row_norms(X):
    """Euclidean norm of every row, without an n × d temporary.

    Array API arrays: on their device, in the most precise float it supports.
    """
    xp, device = _array_api.namespace(X)
    if xp is not None:
        from sklearn.utils._array_api import _max_precision_float_dtype

        X = xp.astype(X, _max_precision_float_dtype(xp, device))
        return xp.sqrt(xp.sum(X * X, axis=1))
    if sp.issparse(X):
        X = canonical_csr(X)  # repeated entries add up first
        squares = np.square(X.data, dtype=np.float64)
        sums = np.zeros(X.shape[0])
        filled = np.flatnonzero(np.diff(X.indptr))
        if filled.size:
            sums[filled] = np.add.reduceat(squares, X.indptr[filled])
        return np.sqrt(sums)
    return np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))


def _folded(curvature):
    """``curvature`` without pending work (:meth:`CurvatureInverse.folded`)."""
    return curvature.folded()


def largest_multiplicity(X, y, mask):
    """An upper bound on how often one row (values and label) repeats among the
    rows ``mask`` of ``(X, y)``: the size of the largest group of rows whose
    random projections and labels agree to rounding (one product and a sort; equal
    rows always agree, unequal ones merge only by a near-tie, which can only
    raise the bound)."""
    n = X.shape[0]
    if n < 2:
        return 1
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    direction = np.random.default_rng(0x5EED).standard_normal(X.shape[1])
    direction = direction.astype(dtype)
    projected = np.asarray(X @ direction, dtype=np.float64).ravel()[mask]
    y = np.asarray(y)[mask]
    if projected.shape[0] < 2:
        return 1
    scale = float(np.abs(projected).max(initial=0.0)) + np.finfo(np.float64).tiny
    tolerance = 8 * X.shape[1] * np.finfo(dtype).eps * scale
    order = np.lexsort((projected, y))
    projected, labels = projected[order], np.asarray(y)[order]
    new_group = (np.diff(projected) > tolerance) | (labels[1:] != labels[:-1])
    starts = np.flatnonzero(np.r_[True, new_group, True])
    return int(np.diff(starts).max())


def _power_of_two_above(value):
    """The smallest power of two ≥ ``value`` (0 for 0): a bound that hides ``value``."""
    if not np.isfinite(value):
        return np.inf
    return 0.0 if value <= 0 else float(2.0 ** np.ceil(np.log2(value)))


class _Request(NamedTuple):
    """A validated request: everything the computation needs, nothing mutable."""

    X: object
    y: np.ndarray  # class indices
    sample_weight: np.ndarray
    state: ErasureState
    theta: np.ndarray
    labels: np.ndarray  # the user's labels, for the record
    fingerprints: np.ndarray | None  # keyed, when a ledger checks the request
    request_id: str | None = None  # the caller's ticket, for the record


def _state_attribute(field, doc):
    def get(self):
        try:
            state = self.__dict__["erasure_state_"]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {field!r} "
                "(it has no erasure state: call fit)"
            ) from None
        return getattr(state, field)

    return property(get, doc=doc)


class PartialForgetRequestMixin:
    """``set_partial_forget_request``: metadata routing for ``partial_forget``.

    scikit-learn's routing knows a fixed list of methods (``fit``,
    ``partial_fit``, ``predict``, ...); adding one means patching that list
    globally, which would change every estimator in the process. This mixin
    gives the same user interface for ``partial_forget`` instead: with
    ``sklearn.set_config(enable_metadata_routing=True)``,
    ``est.set_partial_forget_request(sample_weight=True)`` asks
    :func:`sklearn_ssse.compose.forget` (which routes through pipelines and
    searches) to pass ``sample_weight`` on (likewise ``ledger``); ``False``
    refuses it, a string aliases it, ``None`` (the default) raises if it is
    given. The request
    survives :func:`~sklearn.base.clone` and pickling.
    """

    def set_partial_forget_request(self, **requests):
        """Request metadata passed to the ``partial_forget`` method.

        Only relevant with ``enable_metadata_routing=True`` (see
        :func:`sklearn.set_config`), when the estimator is used inside a
        pipeline or search given to :func:`sklearn_ssse.compose.forget`.

        Parameters
        ----------
        **requests : str, True, False, or None
            One entry per metadata of ``partial_forget`` (``sample_weight``, and
            ``ledger`` where the method takes one): ``True`` routes it, ``False``
            does not, ``None`` raises if it is given, a string routes the
            metadata of that name to it. Omitted ones stay as they are.

        Returns
        -------
        self : object
            The updated object.
        """
        if not _routing_enabled():
            raise RuntimeError(
                "This method is only available when metadata routing is enabled."
                " You can enable it using"
                " sklearn.set_config(enable_metadata_routing=True)."
            )
        current = dict(self._get_partial_forget_request())
        unexpected = set(requests) - set(current)
        if unexpected:
            raise TypeError(
                f"Unexpected args: {unexpected} in partial_forget. Accepted "
                f"arguments are: {set(current)}"
            )
        for name, value in requests.items():
            if not (value in (True, False, None) or isinstance(value, str)):
                raise ValueError(
                    f"{name} must be True, False, None or a string alias; got {value!r}"
                )
            current[name] = value
        self._partial_forget_request = current
        return self

    def _get_partial_forget_request(self):
        """``{param: True | False | None | alias}`` for ``partial_forget``."""
        stored = getattr(self, "_partial_forget_request", None)
        if stored is not None:
            return stored
        signature = inspect.signature(type(self).partial_forget)
        return {
            name: None
            for name, param in signature.parameters.items()
            if name not in ("self", "X", "y", "Y")
            and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        }

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        if hasattr(self, "_partial_forget_request"):
            new._partial_forget_request = dict(self._partial_forget_request)
        return new


def _diagonal_blocks(blocks, C, damping, damped, null, excess):
    """``block_size=1``: the per-block rules of ``_fit_erasure_state`` at once.

    Returns ``(data_diagonal, prior, inverses)``, ``inverses`` of shape
    ``(P, 1, 1)``. Raises ``LinAlgError`` if a coordinate's curvature is not
    positive.
    """
    diagonal = C * np.concatenate([b.reshape(-1) for b in blocks])
    dtype = diagonal.dtype
    scale = np.where(diagonal > 0, diagonal, 1.0)
    floor = np.sqrt(np.finfo(dtype).eps) * scale
    prior = (damping * damped + floor).astype(dtype)
    values = diagonal + prior
    for direction in null.T:  # a flat direction inside one coordinate
        support = np.flatnonzero(direction)
        if support.size == 1 and np.isclose(np.linalg.norm(direction), 1.0):
            j = support[0]
            values[j] += scale[j] * direction[j] ** 2
            factor = np.zeros(diagonal.shape[0])
            factor[j] = np.sqrt(scale[j]) * direction[j]
            excess.append(factor)
    if not np.all(values > 0):
        raise np.linalg.LinAlgError("a curvature coordinate is not positive")
    inverses = (1.0 / values).astype(dtype).reshape(-1, 1, 1)
    return diagonal.astype(np.float64), prior, inverses


def _caller_stacklevel():
    """``stacklevel`` for a warning raised by the caller of this function that
    points at the first frame outside sklearn-ssse, scikit-learn and joblib (the
    user's ``fit``, whichever estimator or meta-estimator it went through)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith(
        ("sklearn_ssse.", "sklearn.", "joblib.")
    ):
        frame, level = frame.f_back, level + 1
    return level


class ErasableMixin(PartialForgetRequestMixin):
    """Mixin giving a fitted classifier ``partial_forget``, the SSSE update.

    The estimator provides:

    - ``_erasure_maths()``: its :class:`~sklearn_ssse._maths.ModelMaths`;
    - ``_get_flat_params()`` / ``_flat_params_attributes(theta)``: its parameters as
      a flat vector, and the fitted attributes (e.g. ``coef_``) of a vector;
    - ``_objective_scaling()``: ``(C, penalty_strength, penalized_mask)`` such that
      the training objective is ``C Σ w_i ℓ_i + ½ penalty_strength ‖θ[mask]‖²``;
    - ``_class_weights(weight_sums, active)``: the per-class weights the objective
      gives the remaining rows (ones by default).

    It calls :meth:`_fit_erasure_state` at the end of ``fit``.
    """

    # -- the state's fields, readable as the fitted attributes of earlier versions --
    curvature_inverse_ = _state_attribute(
        "curvature", "The stored inverse curvature (``erasure_state_.curvature``)."
    )
    curvature_point_ = _state_attribute("point", "Parameters where M was built.")
    damping_diagonal_ = _state_attribute("prior", "Damping added to M's diagonal.")
    residual_gradient_ = _state_attribute(
        "residual_gradient", "Objective gradient at the published parameters."
    )
    class_gradient_sums_ = _state_attribute(
        "class_gradient_sums", "Per-class gradient sums (balanced weights only)."
    )
    fit_class_weight_ = _state_attribute("fit_class_weight", "Class weights of fit.")
    class_counts_ = _state_attribute(
        "class_counts", "Training rows of each class not forgotten yet."
    )
    class_weight_sums_ = _state_attribute(
        "class_weight_sums", "Sample-weight sums of those rows."
    )
    curvature_params_ = _state_attribute(
        "curvature_params", "Parameters the stored curvature depends on."
    )
    n_forgotten_ = _state_attribute("n_forgotten", "Rows forgotten since fit.")
    request_records_ = _state_attribute(
        "records",
        "One RequestRecord per request since fit, in a read-only RequestLog "
        "(reads like a tuple and compares equal to the tuple of its records).",
    )

    # -- hooks with defaults -------------------------------------------------------
    def _class_weights(self, weight_sums, active):
        return np.ones(len(weight_sums), dtype=np.float64)

    def _class_weights_depend_on_data(self):
        return False

    def _check_erasable(self):
        """Raise if this fitted model cannot take a request at all (default: it can)."""

    def _check_remaining_rows(self, n_remaining):
        """Raise if ``n_remaining`` rows cannot determine a refit (default: never)."""

    def _certificate_supported(self):
        """Whether requests get a data-free certificate (default: no).

        The bounds of :mod:`sklearn_ssse.certificate` hold for convex models whose
        loss has a bounded third derivative (the logistic models); a family opts
        in by returning ``True`` and giving :class:`LogisticMaths`-like maths.
        """
        return False

    def _strong_convexity(self):
        """The penalty's strong-convexity modulus μ of the whole objective, or 0.

        Positive only when every coordinate is penalised (no intercept, or
        liblinear's penalised one) and the penalty is not zero.
        """
        return 0.0

    def _damping_mask(self, penalized):
        """Coordinates that receive the damping λ (default: the penalised ones).

        A family whose unpenalised coordinates can be flat for the data (a
        network's intercepts) damps every coordinate, the paper's ``λ·I``.
        """
        return penalized

    def _damping_value(self, penalty_strength, blocks, C):
        """The damping λ, from ``damping`` (default: ``None`` → the penalty).

        ``blocks`` are the unscaled data-curvature blocks ``Σ w_i K_i`` (their
        scale is ``C`` times that), for families whose default is relative to it.
        """
        return penalty_strength if self.damping is None else self.damping

    def _zero_forgotten_classes(self, theta, active):
        """Parameters that belong only to classes with no rows left, set to zero.

        A class whose rows are all forgotten must not keep parameters learnt from
        them; the default has no per-class parameters to clear.
        """
        return theta

    def _movable_mask(self, theta):
        """Coordinates the step may move at the fitted ``theta`` (None: all).

        A non-smooth penalty (L1) has no curvature where a penalised coordinate is
        zero: such coordinates are frozen, and the curvature is built, stored and
        inverted on the others only (the *active set* ``A``; the stored inverse is
        that of ``M_AA``). Always evaluated at the point where the curvature was
        built (``curvature_point_``), so the active set is fixed at ``fit``.
        """
        return None

    def _penalty_subgradient(self, theta):
        """Gradient of the objective's non-smooth part at ``theta`` (None: none).

        Added to the fitted gradient (``residual_gradient_``), e.g.
        ``l1_ratio · sign(θ)`` for an elastic-net penalty (zero where ``θ`` is).
        """
        return None

    def _fit_residual(self, residual):
        """``(residual to store, bound carried by the certificate)`` at ``fit``.

        Default: the objective's gradient at the fitted parameters is stored
        exactly (the first request cancels it) and nothing is carried. A
        perturbed objective (certified removal) stores zeros and carries the
        norm of its own gradient instead, so that the state never holds the
        perturbation.
        """
        return residual, 0.0

    def _check_update(self, theta_new, X):
        """Raise :class:`ErasureNumericalError` if the parameters ``theta_new``
        cannot be published (default: any finite parameters can)."""

    def _removal_guarantee(self, state, certificate):
        """The certified-removal entry of a request's certificate, or ``None``."""
        return None

    def _step_maths(self, maths, theta):
        """``(maths restricted to the movable coordinates, their index or None)``."""
        mask = self._movable_mask(theta)
        if mask is None or np.all(mask):
            return maths, None
        index = np.flatnonzero(mask)
        return ActiveSetMaths(maths, index), index

    def _state_step_maths(self, maths, state):
        """:meth:`_step_maths` on the coordinates fixed at ``fit``: the state's
        own movable index (computed at its point in states of older pickles)."""
        if "movable_index" not in state.__dict__:  # an older pickle
            return self._step_maths(maths, state.point)
        index = state.movable_index
        if index is None:
            return maths, None
        return ActiveSetMaths(maths, index), index

    def _curvature_kind(self):
        """``"fisher"`` or ``"hessian"``; families without a Hessian omit the param."""
        return getattr(self, "curvature", "fisher")

    def _curvature_params(self):
        """Current values of the parameters that shape the stored curvature."""
        return {
            name: getattr(self, name)
            for name in CURVATURE_PARAMS
            if hasattr(self, name)
        }

    # -- concurrency and persistence -----------------------------------------------
    def _erasure_lock(self):
        """The estimator's re-entrant lock (:func:`erasure_lock`)."""
        return erasure_lock(self)

    def _snapshot(self):
        """A shallow view of the estimator as published at one instant.

        A request publishes its new state and parameters with one
        ``__dict__.update``; one ``__dict__.copy`` here can therefore never see half
        of it. Prediction methods compute from the view.
        """
        view = object.__new__(type(self))
        view.__dict__ = self.__dict__.copy()
        return view

    def _publish(self, attributes):
        """Install new fitted attributes (the state among them) at once."""
        self.__dict__.update(attributes)

    def __getstate__(self):
        state = dict(super().__getstate__())
        from . import __version__

        state["_sklearn_ssse_version"] = __version__
        return state

    def __setstate__(self, state):
        from . import __version__

        state = dict(state)
        original = state.pop("_sklearn_ssse_version", "unknown")
        if original != __version__:
            warnings.warn(
                InconsistentStateVersionWarning(
                    estimator_name=type(self).__name__,
                    current_version=__version__,
                    original_version=original,
                ),
                stacklevel=2,
            )
        super().__setstate__(state)

    # -- fit-time state --------------------------------------------------------------
    def _fit_erasure_state(self, X, y, sample_weight):
        """Build the erasure state at the fitted parameters and publish it.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n_samples, n_features)
            The validated training data.
        y : ndarray of shape (n_samples,)
            Class indices into ``classes_``.
        sample_weight : ndarray of shape (n_samples,)
            Validated sample weights (ones when none were given).
        """
        full_maths = self._erasure_maths()
        theta = self._get_flat_params()
        if _array_api.namespace(X, theta)[0] is not None:
            return self._fit_erasure_state_xp(X, y, sample_weight)
        # The curvature lives on the movable coordinates only (all, unless L1).
        maths, index = self._step_maths(full_maths, theta)
        n_classes = self.classes_.shape[0]
        active = np.ones(n_classes, dtype=bool)
        C, penalty_strength, penalized = self._objective_scaling()

        weight_sums = np.bincount(y, weights=sample_weight, minlength=n_classes)
        class_weight = np.asarray(
            self._class_weights(weight_sums, active), dtype=X.dtype
        )
        weights = sample_weight * class_weight[y]

        bounds = block_bounds(maths.n_params, self.block_size, maths.group_bounds())
        bounds = bounds or [(0, 0)]  # an empty active set: one empty block
        structure = "blocks"
        if index is None:  # an L1 active set keeps the block structure
            structure, bounds = select_structure(
                getattr(self, "curvature_structure", "blocks"),
                maths,
                X,
                bounds,
                getattr(self, "memory_budget", "auto"),
                estimator=self,
                return_bounds=True,  # "auto"'s fallback may choose a block_size
            )
        excess = []  # the flat-direction terms added to M, for the certificate
        class_sums = fit_gram = None
        fused = hasattr(maths, "curvature_blocks_and_gradient_sums")
        if structure != "blocks":  # options resolved before the solver ran
            coupling = None
            n_iter = getattr(self, "n_iter_", None)
            if (
                structure == "cg"
                and getattr(self, "curvature_structure", None) == "auto"
                and maths.n_outputs > 1
                and n_iter is not None
            ):  # the pair blocks between classes only while requests stay cheap
                coupling = class_coupling_rule(
                    X, maths.n_outputs, int(np.max(n_iter)), maths.fit_intercept
                )
            curvature, prior, data_diagonal = build_cg_curvature(
                maths,
                X,
                y,
                weights,
                theta,
                active,
                self._curvature_kind(),
                C,
                self._damping_value(penalty_strength, None, C),
                self._damping_mask(penalized),
                structure,
                couple_outputs=coupling,
                certificate_gram=self._certificate_supported()
                and self._curvature_kind() == "hessian",
            )
            if structure == "cg" and coupling is not None:
                if len(curvature.pairs) == maths.n_outputs:  # classes uncoupled
                    structure = "cg-class"
        elif index is None and self.fisher_batch_size == 1 and fused:
            # One pass over the rows for the blocks, the gradient sums and (for
            # the certificate of a one-block curvature) the Gram.
            extra = {}
            if self._certificate_supported() and len(bounds) == 1:
                extra["gram_weights"] = C * np.asarray(weights, dtype=np.float64)
            built = maths.curvature_blocks_and_gradient_sums(
                X,
                y,
                weights,
                sample_weight,
                theta,
                active,
                self._curvature_kind(),
                bounds,
                n_classes,
                verbose=getattr(self, "verbose", 0),
                **extra,
            )
            blocks, class_sums = built[:2]
            fit_gram = built[2] if len(built) > 2 else None
        else:
            blocks = maths.curvature_blocks(
                X,
                y,
                weights,
                theta,
                active,
                self._curvature_kind(),
                bounds,
                batch_size=self.fisher_batch_size,
                random_state=getattr(self, "random_state", None),
                verbose=getattr(self, "verbose", 0),
            )
        if structure == "blocks":
            damping = self._damping_value(penalty_strength, blocks, C)
            null = maths.null_directions()
            damped = self._damping_mask(penalized)
            if index is not None:
                damped = damped[index]
            prior = np.zeros(maths.n_params, dtype=theta.dtype)
            data_diagonal = np.zeros(maths.n_params, dtype=np.float64)
            diagonal_inverses = None
            if len(bounds) > 1 and all(e - s == 1 for s, e in bounds):
                # block_size=1: the per-block rules below, vectorised.
                data_diagonal[:], prior[:], diagonal_inverses = _diagonal_blocks(
                    blocks, C, damping, damped, null, excess
                )
                blocks = []
            for block, (start, stop) in zip(blocks, bounds):
                block *= C
                diagonal = np.diag(block)
                data_diagonal[start:stop] = diagonal
                scale = (
                    diagonal.mean() if diagonal.size and diagonal.mean() > 0 else 1.0
                )
                floor = np.sqrt(np.finfo(block.dtype).eps) * scale
                prior[start:stop] = damping * damped[start:stop] + floor
                block[np.diag_indices_from(block)] += prior[start:stop]
                # Flat directions wholly inside this block get the data's own scale.
                for direction in null[start:stop].T:
                    support = np.flatnonzero(direction)
                    if np.isclose(np.linalg.norm(direction), 1.0):
                        part = np.outer(direction[support], direction[support])
                        block[np.ix_(support, support)] += scale * part
                        factor = np.zeros(maths.n_params)
                        factor[start:stop] = np.sqrt(scale) * direction
                        excess.append(factor)
            if getattr(self, "verbose", 0):
                print(
                    f"[curvature] inverting {len(blocks)} block(s) of up to "
                    f"{max(stop - start for start, stop in bounds)} coordinates",
                    flush=True,
                )
            if diagonal_inverses is not None:
                curvature = BlockDiagonalInverse(bounds, list(diagonal_inverses))
            else:
                curvature = BlockDiagonalInverse.from_blocks(bounds, blocks)

        if class_sums is None:
            class_sums = full_maths.gradient_sums(
                X, y, sample_weight, theta, active, n_classes
            )
        residual = C * (class_weight @ class_sums)
        residual = residual + penalty_strength * penalized * theta
        subgradient = self._penalty_subgradient(theta)
        if subgradient is not None:
            residual = residual + subgradient
        residual, carried = self._fit_residual(residual.astype(theta.dtype))
        trained = sample_weight > 0  # rows of weight 0 were never part of the model
        estimated = self.fisher_batch_size > 1
        row_norm_bound = _power_of_two_above(_row_norms(X).max(initial=0.0))
        max_multiplicity = largest_multiplicity(X, y, trained)
        max_sample_weight = _power_of_two_above(float(sample_weight.max(initial=0)))
        certificate_state = None
        if self._certificate_supported():
            hessian = self._curvature_kind() == "hessian"
            if structure == "blocks":
                excess_factor = np.array(excess).reshape(-1, maths.n_params).T
                exact, dense = hessian and len(bounds) == 1, len(bounds) == 1
            else:  # "cg" structures: M is stored exactly (cross-output blocks
                # dropped by "cg-class"); the Gram is kept as its diagonal here,
                # by the structure itself ("cg", "cg-rows": gram_quadratics).
                excess_factor = np.asarray(curvature.null, dtype=np.float64)
                exact, dense = hessian and structure != "cg-class", False
            try:
                certificate_state = fit_certificate_state(
                    maths,
                    X,
                    weights,
                    C=C,
                    penalty=penalty_strength * penalized,
                    prior=prior,
                    excess_factor=excess_factor,
                    row_norm=row_norm_bound,
                    exact_hessian=exact,
                    dense=dense,
                    gram=fit_gram if dense else None,
                )
            except (np.linalg.LinAlgError, ValueError, FloatingPointError):
                # The certificate must never stop a fit: requests are then
                # recorded as not certified.
                certificate_state = None
        if certificate_state is not None and carried:
            certificate_state = certificate_state.replace(cumulative_bound=carried)
        state = ErasureState(
            curvature=curvature,
            point=theta.copy(),
            prior=prior,
            data_diagonal=None if estimated else data_diagonal,
            residual_gradient=residual,
            class_gradient_sums=(
                class_sums if self._class_weights_depend_on_data() else None
            ),
            fit_class_weight=class_weight,
            class_counts=np.bincount(y[trained], minlength=n_classes),
            class_weight_sums=weight_sums,
            row_norm_bound=row_norm_bound,
            curvature_params=self._curvature_params(),
            coefficients=theta.copy(),
            certificate_state=certificate_state,
            max_multiplicity=max_multiplicity,
            max_sample_weight=max_sample_weight,
            movable_index=index,
            seal_key=_seal_key_of(self),
        )
        if structure in ("cg", "cg-class"):
            self._warn_if_costly(structure, curvature, X, maths)
        self._publish({"erasure_state_": state, "curvature_structure_": structure})

    def _warn_if_costly(self, structure, curvature, X, maths):
        """:class:`CostlyErasureWarning` when ``"auto"`` chose a ``"cg"`` structure
        whose requests may cost as much as this fit's solver did or more
        (estimated above ``COSTLY_REQUEST_RATIO``)."""
        if getattr(self, "curvature_structure", None) != "auto":
            return  # chosen by hand: the user knows the trade
        n_iter = getattr(self, "n_iter_", None)
        if n_iter is None:
            return
        ratio = request_cost_ratio(
            curvature, X, maths.n_outputs, int(np.max(n_iter)), maths.fit_intercept
        )
        if ratio is None or ratio <= COSTLY_REQUEST_RATIO:
            return
        # (With several classes, "auto" has already dropped the curvature between
        # them when it was costly: class_coupling_rule, the same estimate.)
        warnings.warn(
            f"a request on this model may cost as much as refitting it or more "
            f"(about {ratio:.1f}x the solver's work in this fit, by an operation "
            "count that errs by up to 2.5x either way): "
            f"curvature_structure='auto' chose {structure!r}, "
            + (
                "each class's curvature (without the terms between classes) "
                if structure == "cg-class"
                else "the exact curvature "
            )
            + "solved by conjugate gradient, because dense inverse blocks "
            "would not fit or would take far longer to build. Options: "
            "curvature_structure='cg-rows' (the same step from the training rows, "
            "about 0.05-0.3x a refit on sparse text, but the model then holds the "
            "remaining training rows), 'blocks' with a block_size "
            "(faster, further from the retrain), or refitting on each request. "
            "Set curvature_structure explicitly to silence this warning.",
            CostlyErasureWarning,
            stacklevel=_caller_stacklevel(),
        )

    def _fit_erasure_state_xp(self, X, y, sample_weight):
        """:meth:`_fit_erasure_state` for array API inputs (dense), on their device.

        The same state as the NumPy path: the labels and weights go to the host
        for the class bookkeeping (``n_classes`` numbers, as scikit-learn's
        ``LogisticRegression`` encodes labels on the host); everything of the
        size of a parameter vector or larger stays on the device.
        """
        maths = self._erasure_maths()
        theta = self._get_flat_params()
        xp, device = _array_api.namespace(X, theta)
        y_host = np.asarray(_array_api.to_numpy(y), dtype=np.intp)
        sw_host = np.asarray(_array_api.to_numpy(sample_weight), dtype=np.float64)
        n_classes = self.classes_.shape[0]
        active = np.ones(n_classes, dtype=bool)
        C, penalty_strength, penalized = self._objective_scaling()
        penalized = np.asarray(_array_api.to_numpy(penalized), dtype=np.float64)

        weight_sums = np.bincount(y_host, weights=sw_host, minlength=n_classes)
        class_weight = np.asarray(
            self._class_weights(weight_sums, active), dtype=np.float64
        )
        y_dev = _array_api.to_device(y_host, xp, device)
        sample_weight = _array_api.to_device(sample_weight, xp, device, dtype=X.dtype)
        weights = sample_weight * _array_api.to_device(
            class_weight[y_host], xp, device, dtype=X.dtype
        )
        bounds = block_bounds(maths.n_params, self.block_size, maths.group_bounds())
        blocks = maths.curvature_blocks(
            X,
            y_dev,
            weights,
            theta,
            active,
            self._curvature_kind(),
            bounds,
            batch_size=self.fisher_batch_size,
            random_state=getattr(self, "random_state", None),
        )
        damping = penalty_strength if self.damping is None else self.damping
        null = maths.null_directions()
        damped = self._damping_mask(penalized)
        prior = np.zeros(maths.n_params, dtype=np.float64)
        diagonals = []
        finished = []
        for block, (start, stop) in zip(blocks, bounds):
            block = block * C
            diagonal = xp.linalg.diagonal(block)
            diagonals.append(diagonal)
            mean = float(xp.mean(diagonal)) if stop > start else 0.0  # one scalar
            scale = mean if mean > 0 else 1.0
            floor = np.sqrt(xp.finfo(block.dtype).eps) * scale
            prior[start:stop] = damping * damped[start:stop] + floor
            # M = block + diag(prior) + scale · Σ u uᵀ over the flat directions
            # wholly inside the block, as in the NumPy path.
            eye = xp.eye(stop - start, dtype=block.dtype, device=device)
            block = block + eye * _array_api.to_device(
                prior[start:stop], xp, device, dtype=block.dtype
            )
            for direction in null[start:stop].T:
                if np.isclose(np.linalg.norm(direction), 1.0):
                    u = _array_api.to_device(direction, xp, device, dtype=block.dtype)
                    block = block + scale * (u[:, None] * u[None, :])
            finished.append(block)
        curvature = BlockDiagonalInverse.from_blocks(bounds, finished)
        data_dtype = _array_api.to_device(np.zeros(0), xp, device).dtype
        data_diagonal = xp.astype(xp.concat(diagonals), data_dtype)

        class_sums = maths.gradient_sums(
            X, y_dev, sample_weight, theta, active, n_classes
        )
        residual = C * (
            _array_api.to_device(class_weight, xp, device, dtype=theta.dtype)
            @ class_sums
        ) + penalty_strength * (
            _array_api.to_device(penalized, xp, device, dtype=theta.dtype) * theta
        )
        trained = sw_host > 0
        norms = _row_norms(X)
        max_norm = float(xp.max(norms)) if X.shape[0] else 0.0
        state = ErasureState(
            curvature=curvature,
            point=xp.asarray(theta, copy=True),
            prior=_array_api.to_device(prior, xp, device, dtype=theta.dtype),
            data_diagonal=None if self.fisher_batch_size > 1 else data_diagonal,
            residual_gradient=xp.astype(residual, theta.dtype),
            class_gradient_sums=(
                class_sums if self._class_weights_depend_on_data() else None
            ),
            fit_class_weight=class_weight.astype(
                np.float32 if theta.dtype == xp.float32 else np.float64
            ),
            class_counts=np.bincount(y_host[trained], minlength=n_classes),
            class_weight_sums=weight_sums,
            row_norm_bound=_power_of_two_above(max_norm),
            curvature_params=self._curvature_params(),
            coefficients=xp.asarray(theta, copy=True),
        )
        self._publish({"erasure_state_": state})

    # -- partial_forget --------------------------------------------------------------
    def partial_forget(self, X, y, sample_weight=None, *, ledger=None, request_id=None):
        """Erase training rows from the fitted model in one closed-form step.

        Applies the influence update (``curvature="hessian"``) or the SSSE update
        (``curvature="fisher"``) for the rows ``(X, y)``, then removes their
        contribution from the stored curvature, so that later requests and the
        stored state no longer depend on them. Only the rows to forget are needed.

        The request is checked before anything changes; concurrent calls on one
        model are serialised, and predictions made meanwhile see the model either
        before or after the request.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            The rows to forget, as given to ``fit``.
        y : array-like of shape (n_rows,)
            Their labels, as given to ``fit``.
        sample_weight : array-like of shape (n_rows,), default=None
            The sample weights these rows had in ``fit`` (ones when ``None``);
            each must be positive.
        ledger : ErasureLedger, default=None
            A :class:`~sklearn_ssse.ledger.ErasureLedger` of the training rows.
            With it, rows never trained on and rows already forgotten are refused
            exactly, and the forgotten rows are recorded in it.
        request_id : str, default=None
            The caller's identifier of the request (a ticket number), kept in
            its record (:attr:`request_records_`) for the audit trail. A request
            whose id is already in the records is refused: one ticket is applied
            once. It is stored as given: do not put personal data in it.

        Returns
        -------
        self : object
            The updated estimator.

        Raises
        ------
        InvalidRequestError
            The request is invalid: wrong number of features, NaN or infinite
            values, labels not seen in ``fit``, non-positive weights, the same row
            twice, rows larger than any training row, more rows of a class than
            remain, every remaining row, or (with ``ledger``) rows never trained on
            or already forgotten.
        ErasureNumericalError
            Removing the rows would leave the stored curvature indefinite (they
            cannot all be training rows with these labels and weights), or the
            update is not finite.
        IncompatibleStateError
            The stored state cannot serve requests: another state format, a
            parameter that shapes the curvature changed since ``fit``, or the
            fitted parameters were modified outside the library.

        All three are :class:`ValueError` subclasses; in every case the model is
        left unchanged.
        """
        with self._erasure_lock():
            # 1. One snapshot of the parameters, validated: the request reads
            # nothing else from the estimator.
            work = request_snapshot(self)
            # 2. Check the request against the published state (and the ledger).
            request = work._prepare_forget(
                X, y, sample_weight, ledger=ledger, request_id=request_id
            )
            if request is None:
                return self
            # 3. Claim the rows in the ledger (checked and reserved in one step:
            # a replica erasing the same row meanwhile is refused), compute the
            # new state and parameters, publish them, and mark the rows; an
            # error on the way releases the claim and changes nothing.
            claim = (
                contextlib.nullcontext()
                if ledger is None
                else ledger.claim(request.fingerprints)
            )
            with claim:
                attributes = work._compute_forget(request)
                self._publish(attributes)
            # 4. The opt-in policy past the budget: reconcile with the rows it gives.
            policy = getattr(work, "on_budget", None)
            if callable(policy):
                if attributes["erasure_state_"].records[-1].within_budget is False:
                    self._reconcile_by_policy(policy)
        return self

    def _reconcile_by_policy(self, policy):
        """``reconcile`` with the remaining rows ``policy()`` gives (the request
        itself stays applied if that fails: warned, with the reason)."""
        from .reconcile import reconcile

        try:
            rows = policy()
            reconcile(self, *rows)
        except Exception as exc:  # the request is applied either way
            warnings.warn(
                "Refit recommended: the request was applied, but reconciling with "
                f"the rows on_budget gave failed ({type(exc).__name__}: {exc})",
                RefitRecommendedWarning,
                stacklevel=3,
            )

    def compact_erasure_state(self):
        """Fold the low-rank factors of recent requests into the stored inverse.

        A request on a dense curvature block publishes the new inverse as the
        shared inverse before it plus low-rank Woodbury factors, folded into a new
        dense block once their rank passes an eighth of the block
        (``docs/latency.md``). Until then the live model holds, in memory, the
        curvature that recent requests removed, from which the directions of the
        forgotten rows can be recovered; the certificate's Gram likewise keeps
        the rows of recent requests beside it until folded. Pickles, copies and
        skops files never hold either (they store the folded forms). Call this
        method when the live
        model must not hold it either, for instance right after an erasure
        request, before the model is handed on; it costs one write of each block
        with factors, as an eager downdate does.

        Returns
        -------
        self : object
            The estimator, its stored inverse folded (the same matrix).

        Examples
        --------
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.preprocessing import scale
        >>> from sklearn_ssse import ErasableLogisticRegression
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> X = scale(X)
        >>> model = ErasableLogisticRegression().fit(X, y)
        >>> model = model.partial_forget(X[:2], y[:2]).compact_erasure_state()
        >>> type(model.erasure_state_.curvature).__name__
        'BlockDiagonalInverse'
        """
        check_is_fitted(self, "erasure_state_")
        with self._erasure_lock():
            state = self.erasure_state_
            folded = _folded(state.curvature)
            certificate = state.certificate_state
            if certificate is not None:
                certificate = certificate.folded()
            if (
                folded is not state.curvature
                or certificate is not state.certificate_state
            ):
                self._publish(
                    {
                        "erasure_state_": state.replace(
                            curvature=folded, certificate_state=certificate
                        )
                    }
                )
        return self

    def _erasure_state(self):
        """The published state, after checking that it can serve a request."""
        state = self.__dict__.get("erasure_state_")
        if state is None:
            if "curvature_inverse_" in self.__dict__:
                raise IncompatibleStateError(
                    f"this {type(self).__name__} was pickled by sklearn-ssse 0.1, "
                    "whose erasure state (loose attributes) this version cannot "
                    "use; fit the model again to take requests"
                )
            check_is_fitted(self, "erasure_state_")
        if getattr(state, "format_version", None) != STATE_FORMAT_VERSION:
            raise IncompatibleStateError(
                f"the erasure state has format {state.format_version} (written by "
                f"sklearn-ssse {state.library_version}); this version reads format "
                f"{STATE_FORMAT_VERSION}: fit the model again to take requests"
            )
        if state.point is None:  # loaded: the fit point is sealed
            state = self._opened_state(state)
        return state

    def _checked_erasure_state(self):
        """The published state, after checking that this model can take a
        request and that the parameters shaping its curvature did not change."""
        self._check_erasable()
        state = self._erasure_state()
        current = self._curvature_params()
        for name, used in state.curvature_params.items():
            if current.get(name) != used:
                raise IncompatibleStateError(
                    f"{name}={current.get(name)!r} differs from {used!r}, the value "
                    "the stored curvature was built with; call fit again to change "
                    "it (forget_scale and leave_out can be changed at any time)"
                )
        return state

    def _opened_state(self, state):
        """The loaded ``state`` with its point: opened with the key given to
        :meth:`set_erasure_key`, or re-based on the published parameters (with
        a warning) when no key was given; published."""
        key = _KEYS.get(self)
        if key is not None:
            state = state.opened(key)
        else:
            warnings.warn(
                "the fit point of this loaded model is sealed and its key was not "
                "set: requests now linearise at the published parameters (the "
                "state re-based on them). To keep linearization='fit' across "
                "saves, call set_erasure_key(key) before saving and after loading "
                "(docs/privacy.md).",
                SealedPointWarning,
                stacklevel=_caller_stacklevel(),
            )
            state = state.rebased()
        self._publish({"erasure_state_": state})
        return state

    def set_erasure_key(self, key):
        """Set the secret key that seals the fit point in saved copies of the model.

        With ``linearization="fit"`` requests need the fitted parameters, which
        beside the stored curvature would give the erased rows back; a pickle,
        skops file or ``persistence.save`` therefore holds them sealed under a
        key that is never saved. Without a key of yours the key is random and
        lost with the process: a loaded model then re-bases its requests on
        the published parameters (``SealedPointWarning``). Keep the key in a
        secret store, like a ledger's, and set it before saving and after
        loading.

        Parameters
        ----------
        key : bytes
            16 to 64 bytes.

        Returns
        -------
        self : object

        Raises
        ------
        ValueError
            If ``key`` is not 16 to 64 bytes, or does not open this loaded
            model's sealed point (the model is then unchanged).
        """
        from ._sealed import check_key

        key = check_key(key)
        with self._erasure_lock():
            state = self.__dict__.get("erasure_state_")
            if state is not None:
                if state.point is None and state.sealed_point is not None:
                    state = state.opened(key)
                else:
                    state = state.replace(seal_key=key)
                self._publish({"erasure_state_": state})
            _KEYS[self] = key
        return self

    def _prepare_forget(
        self,
        X,
        y,
        sample_weight,
        *,
        ledger=None,
        rows_checked=False,
        request_id=None,
    ):
        """Validate a request against the published state; ``None`` if empty.

        Nothing is modified. Raises the errors listed in :meth:`partial_forget`.
        ``rows_checked``: the caller already checked the rows against a ledger
        (a multi-output request), so duplicates are not refused here.
        """
        state = self._checked_erasure_state()
        check_request_id(request_id, state.records)
        xp, _ = _array_api.namespace(state.coefficients)
        try:
            theta = self._get_flat_params()
            if xp is not None:  # one scalar read on the host
                unchanged = theta.shape == state.coefficients.shape and bool(
                    xp.all(theta == state.coefficients)
                )
            else:
                unchanged = theta.shape == state.coefficients.shape and np.array_equal(
                    theta, state.coefficients
                )
        except Exception:  # e.g. coef_ made sparse by sparsify()
            unchanged = False
        if not unchanged:
            raise IncompatibleStateError(
                "the fitted parameters were modified since the last fit or request "
                "(e.g. coef_ set by hand or sparsify()); the stored state no longer "
                "describes this model: call fit again"
            )
        if xp is not None:
            self._check_request_namespace(X)
        X, y_user, sample_weight = self._validate_request(
            X, y, sample_weight, state.curvature.dtype
        )
        if X.shape[0] == 0:
            return None
        # Labels and weights of the k rows on the host (label bookkeeping; the
        # identity for NumPy); the rows themselves stay where they are.
        y_user = _array_api.to_numpy(y_user)
        weights_host = _array_api.to_numpy(sample_weight)
        classes = _array_api.to_numpy(self.classes_)
        bad_weight = np.flatnonzero(~(weights_host > 0))
        if bad_weight.size:
            raise InvalidRequestError(
                f"sample_weight must be positive: {bad_weight.size} rows have weight "
                f"{float(weights_host[bad_weight[0]])!r} or less (first at row "
                f"{bad_weight[0]}); a row of weight 0 contributed nothing to the "
                "model and is not part of its state"
            )
        heaviest = float(weights_host.max())
        if heaviest > getattr(state, "max_sample_weight", np.inf):
            raise InvalidRequestError(
                f"sample_weight {heaviest:g} is larger than any training row's "
                f"(all were at most {state.max_sample_weight:g}): give the rows the "
                "weights they had in fit"
            )
        try:  # binary search in the sorted classes (np.isin sorts both)
            found = np.searchsorted(classes, y_user)
            found = np.minimum(found, classes.shape[0] - 1)
            unseen = np.asarray(classes[found] != y_user, dtype=bool)
        except TypeError:  # labels of another type than the classes
            unseen = ~np.isin(y_user, classes)
        if np.any(unseen):
            labels = ", ".join(user_label(v) for v in np.unique(y_user[unseen]))
            known = ", ".join(user_label(v) for v in classes)
            raise InvalidRequestError(
                f"y contains labels not seen in fit: {labels}; the model knows {known}"
            )
        y = np.searchsorted(classes, y_user)
        counts = state.class_counts
        requested = np.bincount(y, minlength=self.classes_.shape[0])
        too_many = requested > counts
        if np.any(too_many):
            details = ", ".join(
                f"{requested[a]} rows of class {user_label(classes[a])} "
                f"({counts[a]} remain)"
                for a in np.flatnonzero(too_many)
            )
            raise InvalidRequestError(
                "cannot forget more rows than remain: asked for " + details
            )
        if requested.sum() == counts.sum():
            raise InvalidRequestError(
                "cannot forget every remaining training row: no model can be left"
            )
        self._check_remaining_rows(int(counts.sum() - requested.sum()))
        norms = _row_norms(X)
        if xp is not None:
            # One scalar read; the norms go to the host only for the message.
            fits = bool(xp.all(norms <= state.row_norm_bound))
            norms = norms if fits else _array_api.to_numpy(norms)
        too_large = (
            np.empty(0, dtype=np.intp)
            if xp is not None and fits
            else np.flatnonzero(~(norms <= state.row_norm_bound))
        )
        if too_large.size:
            raise InvalidRequestError(
                f"{too_large.size} rows are larger than any training row (norm "
                f"{norms[too_large[0]]:.3g} at row {too_large[0]}, training rows are "
                f"below {state.row_norm_bound:.3g}): they cannot be training rows"
            )
        fingerprints = None
        if rows_checked:
            pass
        elif ledger is not None:
            # Hashing is host-side: a ledger sees the request's rows on the host.
            fingerprints = ledger.fingerprints(
                _array_api.to_numpy(X), y_user, weights_host
            )
            ledger.check(fingerprints)
        elif X.shape[0] > 1:  # one row cannot repeat itself
            candidates = np.arange(X.shape[0])
            if xp is not None:
                # Identical rows have identical norms: only rows whose norm,
                # label and weight coincide go to the host to be hashed.
                keys = row_fingerprints(
                    _array_api.to_numpy(norms)[:, None], y_user, weights_host
                )
                _, inverse, per_key = np.unique(
                    keys, return_inverse=True, return_counts=True
                )
                candidates = np.flatnonzero(per_key[inverse.ravel()] > 1)
                X_host = (
                    _array_api.to_numpy(
                        xp.take(
                            X,
                            _array_api.to_device(
                                candidates, xp, _array_api.namespace(X)[1]
                            ),
                            axis=0,
                        )
                    )
                    if candidates.size
                    else np.zeros((0, X.shape[1]))
                )
            else:
                X_host = X
            if xp is None and not sp.issparse(X_host):
                # Equal rows (values, label, weight) are equal fingerprints:
                # compare them directly (+ 0.0 makes -0.0 and 0.0 one value).
                rows = np.column_stack(
                    [X_host + X_host.dtype.type(0.0), weights_host, y]
                )
                plain = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize)))
                plain = plain[:, 0]
            else:
                plain = row_fingerprints(
                    X_host, y_user[candidates], weights_host[candidates]
                )
            _, first, repeats = np.unique(plain, return_index=True, return_counts=True)
            # Identical rows of different people are normal: refused only past
            # the largest multiplicity of any training row (an aggregate).
            allowed = int(getattr(state, "max_multiplicity", 1))
            if np.any(repeats > allowed):
                row = int(candidates[first[np.argmax(repeats > allowed)]])
                raise InvalidRequestError(
                    f"the request holds the same row more than once ({repeats.max()} "
                    f"times, row {row}), but no row appeared more than {allowed} "
                    "time(s) in the training set: each training row can be "
                    "forgotten once. "
                    "Pass an ErasureLedger to check every row's multiplicity "
                    "exactly"
                )
        return _Request(
            X, y, sample_weight, state, theta, y_user, fingerprints, request_id
        )

    def _validate_request(self, X, y, sample_weight, dtype):
        """``(X, y, sample_weight)`` of a request, validated as ``fit`` would.

        A request of one person's rows is a few rows: scikit-learn's full
        validation would cost more than the update itself. A C-ordered ndarray of
        the state's dtype with plain labels (the usual request) is checked here
        directly, with the same checks; anything else, and anything these checks
        refuse, goes through ``validate_data``, whose errors are the ones raised.
        """
        if (
            type(X) is np.ndarray
            and type(y) is np.ndarray
            and sample_weight is None
            and X.dtype == dtype
            and X.ndim == 2
            and y.ndim == 1
            and y.dtype.kind in "biufUS"
            and X.flags.c_contiguous
            and 0 < X.shape[0] == y.shape[0]
            and X.shape[1] == getattr(self, "n_features_in_", None)
            and not hasattr(self, "feature_names_in_")
            and np.isfinite(X).all()
            and (y.dtype.kind != "f" or np.isfinite(y).all())
        ):
            return X, y, np.ones(X.shape[0], dtype=dtype)
        try:
            X, y = validate_data(
                self,
                X,
                y,
                reset=False,
                accept_sparse="csr",
                dtype=dtype,
                order="C",
                ensure_min_samples=0,
            )
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=X.dtype, allow_all_zero_weights=True
            )
        except InvalidRequestError:
            raise
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        return X, y, sample_weight

    def _check_request_namespace(self, X):
        """Refuse request rows of another namespace or device than the state's."""
        from sklearn import get_config

        from ._compat import check_same_namespace

        if not get_config()["array_api_dispatch"]:
            raise IncompatibleStateError(
                f"this model was fitted on array API inputs (its state is on "
                f"{_array_api.namespace(self.erasure_state_.coefficients)[0].__name__}"
                "); call partial_forget under "
                "sklearn.config_context(array_api_dispatch=True) with rows of the "
                "same namespace and device"
            )
        try:
            check_same_namespace(X, self, attribute="coef_", method="partial_forget")
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc

    def _compute_forget(self, request, step=None):
        """The new fitted attributes after a request (``erasure_state_`` included).

        Nothing is modified. ``step(gradient, inverse, downdated_inverse)`` may
        replace the SSSE step ``-ε M⁻¹ ∇J_{-S}`` (see :mod:`sklearn_ssse.baselines`);
        the bookkeeping and the removal of the rows from the stored curvature stay
        the same.
        """
        X, y, sample_weight, state, theta = request[:5]
        maths = self._erasure_maths()
        n_classes = self.classes_.shape[0]
        C, _, _ = self._objective_scaling()
        kind = self._curvature_kind()
        active = state.class_counts > 0
        # Array API state: the maths run on its device; class-sized bookkeeping
        # (counts, weights per class) stays on the host. ``dev`` uploads it.
        xp, device = _array_api.namespace(theta)
        weights_host = _array_api.to_numpy(sample_weight)

        def dev(array):
            return _array_api.to_device(array, xp, device, dtype=theta.dtype)

        # Gradient of the objective without S. With linearization="fit" the
        # forgotten rows' gradients are taken where the curvature was built and
        # moved to the current parameters by that curvature (below), so that every
        # request solves the same quadratic model; otherwise at the current point.
        # (A family passing its own ``step`` handles this itself.)
        at_fit = step is None and getattr(self, "linearization", "current") == "fit"
        forgotten_sums = maths.gradient_sums(
            X, y, sample_weight, state.point if at_fit else theta, active, n_classes
        )
        counts = state.class_counts - np.bincount(y, minlength=n_classes)
        weight_sums = np.maximum(
            state.class_weight_sums
            - np.bincount(y, weights=weights_host, minlength=n_classes),
            0.0,
        )
        new_active = counts > 0
        if state.class_gradient_sums is None and xp is None:
            old_weights = state.fit_class_weight  # unchanged since fit
        else:
            old_weights = np.asarray(
                self._class_weights(state.class_weight_sums, active)
            )
        if xp is None:
            gradient = state.residual_gradient - C * (old_weights @ forgotten_sums)
        else:
            gradient = state.residual_gradient - C * (dev(old_weights) @ forgotten_sums)
        remaining_sums = None
        if state.class_gradient_sums is not None:
            # Class weights that depend on the data (class_weight="balanced") change
            # for every remaining row: first-order effect from per-class sums.
            new_weights = np.asarray(self._class_weights(weight_sums, new_active))
            remaining_sums = state.class_gradient_sums - forgotten_sums
            new_weights[~new_active] = 0
            if xp is None:
                remaining_sums[~new_active] = 0
                change = new_weights - old_weights
            else:
                live = _array_api.to_device(new_active, xp, device)
                remaining_sums = xp.where(live[:, None], remaining_sums, 0.0)
                change = dev(new_weights - old_weights)
            gradient = gradient + C * (change @ remaining_sums)

        # Take S out of the stored curvature, evaluated where it was built (on the
        # movable coordinates only, when some are frozen).
        maths, index = self._state_step_maths(maths, state)
        if index is not None:
            gradient = gradient[index]
        inverse = state.curvature
        if xp is None:
            fit_weights = C * sample_weight * state.fit_class_weight[y]
        else:
            fit_weights = C * sample_weight * dev(state.fit_class_weight[y])
        all_active = np.ones(n_classes, dtype=bool)
        rank = X.shape[0] * maths.factor_rank(kind)
        estimated = state.data_diagonal is None
        if inverse.downdate_by == "rows":  # curvature_structure="cg", "cg-rows"
            Xt, V = downdate_rows(
                maths, X, y, state.point, all_active, kind, fit_weights
            )
            removed_diagonal = weighted_column_squares(
                Xt, np.einsum("iaa->ia", V)
            ).ravel()
            # The certificate's Gram (kept by "cg") is downdated with M.
            downdate = {"rows": (Xt, V), "gram_weights": fit_weights}
        elif inverse.prefers_factors(rank) and not estimated:
            rows = maths.factor_rows(X, y, state.point, all_active, kind)
            if xp is None:
                rows *= np.sqrt(fit_weights)[:, None, None]
                U = rows.reshape(-1, maths.n_params)
                removed_diagonal = np.einsum("ij,ij->j", U, U, dtype=np.float64)
            else:
                rows = rows * xp.sqrt(fit_weights)[:, None, None]
                U = xp.reshape(rows, (-1, maths.n_params))
                U64 = xp.astype(U, state.data_diagonal.dtype)
                removed_diagonal = xp.sum(U64 * U64, axis=0)
            downdate = {"factors": [U[:, s:e].T for s, e in inverse.bounds]}
        else:
            grams = maths.curvature_blocks(
                X, y, fit_weights, state.point, all_active, kind, inverse.bounds
            )
            if xp is None:
                removed_diagonal = np.concatenate([np.diag(W) for W in grams])
            else:
                removed_diagonal = xp.concat([xp.linalg.diagonal(W) for W in grams])
            # A mini-batch Fisher is an estimate: remove only what it holds.
            downdate = {"grams": grams, "prior": state.prior if estimated else None}

        if at_fit:
            moved = theta - state.point
            if bool((np if xp is None else xp).any(moved != 0)):
                if (
                    xp is None
                    and "factors" in downdate
                    and np.array_equal(old_weights, state.fit_class_weight)
                ):  # the downdate's factors are the rows' curvature at θ*
                    local = moved if index is None else moved[index]
                    gradient = gradient - U.T @ (U @ local)
                elif (
                    xp is None
                    and "rows" in downdate
                    and np.array_equal(old_weights, state.fit_class_weight)
                ):  # the same from the rows and weights (sparse: no dense copy)
                    local = moved if index is None else moved[index]
                    gradient = gradient - rows_product(*downdate["rows"], local)
                else:
                    product = self._curvature_product(
                        X, y, sample_weight, state, old_weights, moved
                    )
                    # Off the active set ``moved`` is zero; keep the active rows.
                    gradient = gradient - (product if index is None else product[index])

        data_diagonal = None
        if not estimated:
            data_diagonal = state.data_diagonal - removed_diagonal
            finfo = (np if xp is None else xp).finfo(X.dtype)
            # Relative to each coordinate's own curvature, and never below what
            # the stored dtype can hold: a feature of 1e-25 in float32 has
            # squares that flush to zero in the stored sums.
            floor = float(finfo.smallest_normal) * float(state.class_counts.sum())
            tolerance = (
                float(np.sqrt(finfo.eps)) * (state.data_diagonal + removed_diagonal)
                + floor
            )
            if bool((np if xp is None else xp).any(data_diagonal < -tolerance)):
                raise ErasureNumericalError(
                    "removing these rows would take more curvature out of the model "
                    "than its training rows put in: they cannot all be training "
                    "rows with these labels and weights (or were already "
                    "forgotten). The model is unchanged."
                )
            if xp is None:
                data_diagonal = np.maximum(data_diagonal, 0.0)
            else:
                data_diagonal = xp.clip(data_diagonal, min=0.0)
        applied = None
        span_residual = None
        try:
            if step is None and xp is None and "factors" in downdate:
                # One pass over the stored inverse gives the downdate and the step
                # (k columns, not k + 1, when the gradient lies in the rows' span).
                span = None
                if (
                    index is None
                    and maths.n_outputs == 1
                    and X.shape[0] <= SPAN_MAX_ROWS
                ):
                    rows_augmented = maths._augment(X)
                    span = row_span(rows_augmented, U, gradient)
                if span is not None:
                    span_residual = span[2]
                    span = (rows_augmented, span[0], span[1])
                new_inverse, old_applied, new_applied = inverse.downdated_and_applied(
                    downdate["factors"], gradient, span=span
                )
                applied = new_applied if self.leave_out else old_applied
            else:
                new_inverse = inverse.downdated(**downdate)
        except np.linalg.LinAlgError as exc:
            raise ErasureNumericalError(
                "removing these rows would leave the stored curvature indefinite: "
                "they cannot all be training rows with these labels and weights "
                "(or the curvature is too ill-conditioned to downdate; a refit "
                f"is then the safe path). The model is unchanged. ({exc})"
            ) from exc

        solved = solve_residual = None
        if step is not None:
            delta = step(gradient, inverse, new_inverse)
        else:
            if applied is None:
                step_inverse = new_inverse if self.leave_out else inverse
                applied = step_inverse.apply(gradient)
                if "rows" in downdate and state.certificate_state is not None:
                    # CG stops at rtol: the certificate takes the solve's
                    # residual ĝ − M s, one more product with the stored M.
                    solve_residual = np.asarray(
                        gradient, dtype=np.float64
                    ) - step_inverse.matvec(applied).astype(np.float64)
            solved = applied
            delta = -self.forget_scale * applied
            if span_residual is not None and np.any(span_residual):
                solve_residual = span_residual  # M s = Bᵀa = ĝ − ρ exactly
        if index is not None:  # frozen coordinates stay where they are
            full_delta = np.zeros_like(theta)
            full_delta[index] = delta
            delta = full_delta
        theta_new = self._zero_forgotten_classes(theta + delta, new_active)
        if xp is None:
            theta_new = theta_new.astype(theta.dtype)
            finite = np.all(np.isfinite(theta_new))
            with np.errstate(over="ignore", invalid="ignore"):
                step_norm = float(np.linalg.norm(theta_new - theta))
        else:  # two scalar reads on the host
            theta_new = xp.astype(theta_new, theta.dtype)
            finite = bool(xp.all(xp.isfinite(theta_new)))
            step_norm = float(xp.linalg.vector_norm(theta_new - theta))
        if not finite or not np.isfinite(step_norm):
            raise ErasureNumericalError(
                "the update would make the parameters non-finite; the request is "
                "too large for one step from this model: refit instead. The model "
                "is unchanged."
            )
        self._check_update(theta_new, X)

        certificate, certificate_state = None, state.certificate_state
        if certificate_state is not None:
            if index is not None:
                certificate, certificate_state = uncertified(
                    certificate_state,
                    "an L1/elastic-net step on the active set: the bounds assume a "
                    "smooth objective over every coordinate",
                )
            elif not np.all(new_active):
                certificate, certificate_state = uncertified(
                    certificate_state,
                    "a class lost all its rows: the remaining objective has fewer "
                    "classes than the certified one",
                )
            else:
                removed_hessian = None
                if step is None and not self.leave_out:
                    if "factors" in downdate:
                        removed_hessian = lambda v: U.T @ (U @ v)  # noqa: E731
                    elif "rows" in downdate:
                        removed_hessian = lambda v: rows_product(  # noqa: E731
                            *downdate["rows"], v
                        ).astype(np.float64)
                    else:
                        removed_hessian = lambda v: grams[0] @ v  # noqa: E731
                certificate, certificate_state = request_certificate(
                    certificate_state,
                    maths,
                    theta=theta,
                    theta_new=theta_new,
                    point=state.point,
                    gradient=gradient,
                    solved=solved,
                    forget_scale=self.forget_scale,
                    removed_hessian=removed_hessian,
                    X=X,
                    removed_weights=fit_weights,
                    solve_residual=solve_residual,
                    gram_quadratics=getattr(new_inverse, "gram_quadratics", None),
                )
            certificate["distance_bound"] = distance_bound(
                certificate["cumulative_gradient_bound"], self._strong_convexity()
            )
        budget = getattr(self, "certificate_budget", None)
        within = None
        if certificate is not None and budget is not None:
            relative = certificate.get("relative_gradient_bound")
            # A request the bounds do not cover (a whole class forgotten) is
            # recorded as such, without a refit signal.
            within = None if relative is None else bool(relative <= budget)
        guarantee = self._removal_guarantee(state, certificate)
        if guarantee is not None:  # opt-in certified removal (linear_model.py)
            certificate = {**(certificate or {}), "certified_removal": guarantee}
            within = False if not guarantee["holds"] else within
        new_id = new_state_id()
        record = RequestRecord(
            index=state.version + 1,
            time=utc_now(),
            n_rows=int(X.shape[0]),
            rows_per_class={},  # per-class counts name a small request's labels
            forget_scale=float(self.forget_scale),
            curvature=str(kind),
            leave_out=bool(self.leave_out),
            step_norm=step_norm,
            certificate=certificate,
            n_params=int(maths.n_params),
            n_remaining=int(counts.sum()),
            budget=None if budget is None else float(budget),
            within_budget=within,
            request_id=request.request_id,
            state_id=new_id,
        )
        if within is False:
            self._over_budget(record)
        new_state = state.replace(
            state_id=new_id,
            parent_id=state.state_id,
            curvature=new_inverse,
            data_diagonal=data_diagonal,
            residual_gradient=(np if xp is None else xp).zeros_like(
                state.residual_gradient
            ),
            class_counts=counts,
            class_weight_sums=weight_sums,
            class_gradient_sums=remaining_sums,
            n_forgotten=state.n_forgotten + X.shape[0],
            records=append_record(state.records, record),
            coefficients=theta_new,
            certificate_state=certificate_state,
        )
        attributes = self._flat_params_attributes(theta_new)
        attributes["erasure_state_"] = new_state
        return attributes

    def _curvature_product(self, X, y, sample_weight, state, class_weights, vector):
        """``C Σ_{i∈S} w_i K_i(θ*) v``: the forgotten rows' curvature at the fit
        point (with the current class weights) times ``vector``."""
        maths = self._erasure_maths()
        C, _, _ = self._objective_scaling()
        kind = self._curvature_kind()
        all_active = np.ones(self.classes_.shape[0], dtype=bool)
        rows = maths.factor_rows(X, y, state.point, all_active, kind)
        xp, device = _array_api.namespace(vector)
        weights = C * _array_api.to_numpy(sample_weight) * class_weights[y]
        if xp is None:
            U = (rows * np.sqrt(weights)[:, None, None]).reshape(-1, maths.n_params)
        else:
            root = _array_api.to_device(np.sqrt(weights), xp, device, vector.dtype)
            U = xp.reshape(rows * root[:, None, None], (-1, maths.n_params))
        return U.T @ (U @ vector)

    def _over_budget(self, record):
        """Warn, or raise before anything is published, past the budget."""
        certificate = record.certificate
        guarantee = certificate.get("certified_removal")
        if guarantee is not None and not guarantee["holds"]:
            return self._signal_refit(
                f"after request {record.index} the ({guarantee['epsilon']:g}, "
                f"{guarantee['delta']:g})-certified removal guarantee no longer "
                f"holds: {guarantee['reason']}"
            )
        bound = certificate.get("cumulative_gradient_bound")
        reason = certificate.get("note")
        relative = certificate.get("relative_gradient_bound")
        what = (
            f"after request {record.index} the certified bound on the remaining "
            f"objective's gradient is {bound:.3g}, {relative:.3g} times the gradient "
            "that ignoring the requests would leave, above certificate_budget="
            f"{record.budget:.3g}"
            if bound is not None
            else f"request {record.index} cannot be certified ({reason})"
        )
        distance = certificate.get("distance_bound")
        if distance is not None:
            what += f" (distance to the exact retrain at most {distance:.3g})"
        return self._signal_refit(
            f"{what}. The updated model may be far from the model a retrain "
            "without the forgotten rows would give; refit on the remaining rows, "
            "or check with sklearn_ssse.certificate.verify_erasure"
        )

    def _signal_refit(self, what):
        message = f"Refit recommended: {what}."
        if callable(getattr(self, "on_budget", "warn")):
            return  # the policy: reconciled once the request is published
        if getattr(self, "on_budget", "warn") == "raise":
            raise RefitRecommendedError(
                message + " The request was not applied; the model is unchanged."
            )
        warnings.warn(message, RefitRecommendedWarning, stacklevel=6)

    def _forget_copy(self, X, y, sample_weight=None, step=None):
        """A copy of the estimator after a request with a custom ``step``.

        ``self`` is unchanged (used by :mod:`sklearn_ssse.baselines`).
        """
        import copy

        new = copy.deepcopy(self)
        request = new._prepare_forget(X, y, sample_weight)
        if request is not None:
            bound = None if step is None else (lambda *args: step(new, *args))
            new._publish(new._compute_forget(request, bound))
        return new
