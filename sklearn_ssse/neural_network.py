"""ErasableMLPClassifier: MLPClassifier plus ``partial_forget`` (the paper's §5.3)."""

from functools import partial
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.neural_network import MLPClassifier
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._memory import check_memory_budget
from ._mlp_maths import MLPMaths
from .base import ErasableMixin
from .exceptions import ErasureNumericalError, UnscaledInputWarning

# Features whose root mean square passes this make one Gauss-Newton step from the
# fit unreliable (a 3-row request on features of scale 1e3 took test accuracy from
# 0.56 to 0.06): fit warns.
UNIT_SCALE_LIMIT = 1e2


def _warn_if_unscaled(X):
    """:class:`UnscaledInputWarning` when a feature's root mean square is far
    from 1 (one pass over the values, no copy of X)."""
    import warnings

    import scipy.sparse as sp

    n = max(X.shape[0], 1)
    if sp.issparse(X):
        squares = np.asarray(X.multiply(X).sum(axis=0)).ravel()
    else:
        squares = np.einsum("ij,ij->j", X, X, dtype=np.float64)
    rms = np.sqrt(squares / n)
    rms = rms[rms > 0]  # constant-zero columns carry nothing
    if not rms.size:
        return
    if rms.max() > UNIT_SCALE_LIMIT:
        warnings.warn(
            f"the features' root mean squares range from {rms.min():.3g} to "
            f"{rms.max():.3g}: one erasure step from a network fitted on inputs far "
            "from unit scale can wreck it. Scale them (StandardScaler in a "
            "Pipeline) before fit.",
            UnscaledInputWarning,
            stacklevel=3,
        )


__all__ = ["ErasableMLPClassifier"]

# κ of damping="auto": λ = alpha + κ · mean(diag Σ w_i K_i). Chosen by measurement
# (benchmarks/bench_mlp.py, docs/gauss_newton.md).
AUTO_DAMPING = 1.0


class ErasableMLPClassifier(ErasableMixin, MLPClassifier):
    """Multi-layer perceptron classifier that can forget training rows.

    A drop-in :class:`~sklearn.neural_network.MLPClassifier`: every parameter,
    fitted attribute and prediction is the same (``fit`` runs MLPClassifier's own
    ``fit`` and gives the same ``coefs_`` bit for bit). ``fit`` additionally stores
    the inverse of a damped, block-diagonal curvature at the fitted weights
    (generalized Gauss–Newton by default, or the paper's empirical Fisher);
    :meth:`partial_forget` then erases rows in one closed-form Newton-type step
    that needs only those rows.

    MLPClassifier minimises ``(Σ_i w_i ℓ_i + ½ alpha ‖W‖²) / Σ_i w_i`` (log-loss
    ``ℓ_i``, ``w_i`` the sample weights, ``‖W‖²`` over the weight matrices only, not
    the intercepts), whose minimiser is that of ``Σ_i w_i ℓ_i + ½ alpha ‖W‖²``.
    Forgetting rows ``S`` moves the parameters by ``ε · M⁻¹ · Σ_{i∈S} w_i ∇ℓ_i``
    with ``M = λ·I + Σ_i w_i K_i`` and takes the rows out of ``M``. ``K_i`` is the
    Gauss–Newton term ``J_iᵀ (diag p_i − p_i p_iᵀ) J_i`` (``J_i`` the Jacobian of
    row ``i``'s logits, backpropagated; the Hessian of the log-loss in the
    logits, carried back to the weights) or the Fisher term ``g_i g_iᵀ``
    (``g_i = ∇ℓ_i``). See ``docs/gauss_newton.md`` for the derivation and the
    measurements behind the defaults.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, \
warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction, \
beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in :class:`~sklearn.neural_network.MLPClassifier`. Every activation is
        supported. Multi-label targets (2-D ``y``) are fitted as MLPClassifier
        fits them, but :meth:`partial_forget` refuses them.

    curvature : {"gauss_newton", "fisher"}, default="gauss_newton"
        ``"gauss_newton"``: the generalized Gauss–Newton matrix, positive
        semi-definite, and the matrix that matches the loss's curvature in the
        output space (for a network without hidden layer it is the Hessian). Its
        per-row factors have rank ``n_outputs``. ``"fisher"``: the paper's
        empirical Fisher (rank 1 per row, cheaper; it mis-scales directions far
        from a quadratic regime and needs a calibrated ε). Measured on digits
        and a 26-class tabular problem (``benchmarks/results/mlp.md``): the
        Gauss–Newton default keeps the test accuracy through 50 sequential
        requests of 1 % where the Fisher collapses.

    step_length : {"fixed", "line_search"}, default="fixed"
        ``"fixed"``: the step is ``ε`` times the Newton step. ``"line_search"``:
        ``ε`` times a shortened Newton step, ``t* ∈ (0, 1]`` minimising the
        method's own model of the remaining objective along it (the stored
        quadratic model for the rows it no longer sees, the exact loss of the
        forgotten rows); a safeguard for small damping, not needed at the
        default one. May be changed after ``fit``.

    linearization : {"fit", "current"}, default="fit"
        Where the forgotten rows' gradients are taken. ``"fit"``: at the fitted
        weights where the curvature was built, carried to the current weights by
        that curvature, so every request solves the same quadratic model and a
        sequence of requests ends where one request of all their rows would
        (exactly, at ``forget_scale=1``). ``"current"``: at the current weights
        (the paper's); on a network, sequential requests then feed on each
        other's errors and can diverge. May be changed after ``fit``.

    forget_scale : float, default=1.0
        The step scale ε > 0 of the paper. 1 is the Newton step; the ε tools
        (:func:`~sklearn_ssse.model_selection.forget_scale_curve`) calibrate it
        on one deletion with a refit (and a second refit for the noise floor).
        May be changed after ``fit``.

    leave_out : bool, default=True
        Whether the step uses the curvature with the forgotten rows already taken
        out (the paper's leave-k-out variant). May be changed after ``fit``.

    damping : float, "auto" or None, default="auto"
        λ ≥ 0 added to every coordinate of ``M``, intercepts included (the
        paper's ``F̂₀ = λ·I``: a network's intercepts can be flat for the data, at
        saturated or dead units and confident outputs). ``"auto"``: ``alpha + κ ·
        mean(diag Σ_i w_i K_i)`` with ``κ = 1``, a Levenberg–Marquardt damping
        relative to the curvature's own scale, so that it does not depend on the
        data's units or size. A network's curvature is nearly singular (dead
        units, over-parametrisation); with only ``alpha`` (``None``) the Newton
        step is huge in directions the remaining rows do not constrain, and the
        model breaks. κ was chosen by measurement (``docs/gauss_newton.md``).
        ``None``: ``alpha``. A floor of ``√eps × mean(diag of Σ w_i K_i)``
        keeps ``alpha=0`` invertible. A larger value makes the step more like a
        gradient step.

    block_size : None, "class" or int, default=1024
        Structure of the stored curvature. ``None``: one dense block over all
        parameters (memory ``8 · n_params²`` bytes). ``"class"``: one block per
        layer (``[W_l, b_l]``). int ``B``: consecutive blocks of at most ``B``
        coordinates, as in the paper; memory at most ``8 · B · n_params`` bytes.
        The default bounds the memory for any network size.

    fisher_batch_size : int, default=1
        Build the Fisher from gradients summed over shuffled mini-batches of that
        many rows (the paper uses 10 for its ResNet; ``random_state`` sets the
        shuffle).

    memory_budget : "auto", float or None, default="auto"
        Memory, in MiB, that the erasure state may take at its peak; ``fit``
        checks its estimate before training and raises
        :class:`~sklearn_ssse._memory.CurvatureMemoryError` (a ``ValueError``)
        naming the options that fit. ``"auto"``: half of the machine's physical
        memory; ``None``: no check. See
        :class:`~sklearn_ssse.ErasableLogisticRegression`.

    Attributes
    ----------
    classes_, loss_, best_loss_, loss_curve_, validation_scores_, \
best_validation_score_, t_, coefs_, intercepts_, n_features_in_, \
feature_names_in_, n_iter_, n_layers_, n_outputs_, out_activation_
        As in :class:`~sklearn.neural_network.MLPClassifier`; ``coefs_`` and
        ``intercepts_`` change with every :meth:`partial_forget`.

    curvature_inverse_ : BlockDiagonalInverse
        The inverse of ``M`` over the rows not forgotten yet, block by block.

    curvature_point_ : ndarray of shape (n_params,)
        The fitted parameters at which ``M`` was built, flattened layer by layer:
        ``[coefs_[0].ravel(), intercepts_[0], coefs_[1].ravel(), …]``.

    residual_gradient_ : ndarray of shape (n_params,)
        Gradient of ``Σ w_i ℓ_i + ½ alpha ‖W‖²`` left by the solver at ``fit``;
        the first request cancels it, later ones see zeros.

    class_counts_ : ndarray of shape (n_classes,)
        Training rows of each class not forgotten yet.

    class_weight_sums_ : ndarray of shape (n_classes,)
        Sum of the sample weights of those rows.

    fit_class_weight_ : ndarray of shape (n_classes,)
        Ones (MLPClassifier has no ``class_weight``).

    class_gradient_sums_ : None
        Unused by this estimator.

    curvature_params_ : dict
        The values of ``damping``, ``block_size`` and ``fisher_batch_size`` the
        curvature was built with.

    n_forgotten_ : int
        Number of rows forgotten since ``fit``.

    request_records_ : RequestLog of RequestRecord
        One record per request since ``fit``, in a read-only sequence that reads
        like a tuple (see :class:`~sklearn_ssse.ErasableLogisticRegression`).

    Notes
    -----
    **A class whose rows are all forgotten.** A refit would never see it, so the
    model stops predicting it: ``classes_`` keeps its shape (so do
    ``predict_proba`` columns), the class's ``predict_proba`` column is 0 and the
    others are the softmax over the remaining classes (the forgotten class's logit
    set to ``-inf``); ``predict`` never returns it. Its output unit's weights and
    intercept, learnt from its rows only, are set to zero. A binary model left with
    one class predicts it for every row with probability 1. Until a class
    vanishes, predictions are exactly MLPClassifier's.

    **Sequential requests.** With ``linearization="fit"`` (the default) a
    sequence of requests gives the model of one request of all their rows, and
    the distance to a refit grows with the total erased, not with the number of
    requests. With ``"current"``, each step uses gradients at the current
    weights but the curvature measured at the fitted ones: once a request has
    pushed rows far from their fitted predictions, the next one moves further,
    and the steps can diverge.

    **Non-convexity.** The update is a single Newton-type step from the fitted
    weights; a refit of a network lands in a different local minimum, even from
    the same ``random_state``. Judge fidelity against the noise of retraining:
    :func:`~sklearn_ssse.metrics.erasure_report` and the ε tools take a
    ``second_refit`` (another seed) and report the refit-vs-refit distance.

    **early_stopping.** The curvature is built on every row given to ``fit``,
    including the internal validation split that the solver did not train on.

    **partial_fit** changes the weights without the curvature following: it drops
    the erasure state, and :meth:`partial_forget` then asks for a new ``fit``.

    **Errors.** Any error in :meth:`partial_forget` leaves the model exactly as it
    was.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse.neural_network import ErasableMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = ErasableMLPClassifier(
    ...     hidden_layer_sizes=(8,), solver="lbfgs", max_iter=500, random_state=0
    ... ).fit(X, y)
    >>> clf.partial_forget(X[y == 0], y[y == 0]).n_forgotten_
    50
    >>> int((clf.predict(X) == 0).sum())
    0
    """

    _parameter_constraints: dict = {
        **MLPClassifier._parameter_constraints,
        "curvature": [StrOptions({"fisher", "gauss_newton"})],
        "step_length": [StrOptions({"fixed", "line_search"})],
        "linearization": [StrOptions({"fit", "current"})],
        "forget_scale": [Interval(Real, 0, None, closed="neither")],
        "leave_out": ["boolean"],
        "damping": [
            Interval(Real, 0, None, closed="left"),
            StrOptions({"auto"}),
            None,
        ],
        "block_size": [
            None,
            StrOptions({"class"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "fisher_batch_size": [Interval(Integral, 1, None, closed="left")],
        "memory_budget": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
            None,
        ],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        curvature="gauss_newton",
        step_length="fixed",
        linearization="fit",
        forget_scale=1.0,
        leave_out=True,
        damping="auto",
        block_size=1024,
        fisher_batch_size=1,
        memory_budget="auto",
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
        )
        self.curvature = curvature
        self.step_length = step_length
        self.linearization = linearization
        self.forget_scale = forget_scale
        self.leave_out = leave_out
        self.damping = damping
        self.block_size = block_size
        self.fisher_batch_size = fisher_batch_size
        self.memory_budget = memory_budget

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit exactly as MLPClassifier, then store the erasure state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target labels. With 2-D (multi-label) ``y`` the model is fitted
            but stores no erasure state.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights; ones when ``None``.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        check_memory_budget(self, X, y)  # before anything changes
        self._drop_erasure_state()
        # MLPClassifier's fit sees the caller's X, so that it sets n_features_in_
        # and feature_names_in_ itself; the validated copy below is for the state.
        super().fit(X, y, sample_weight=sample_weight)
        if self._is_multilabel():
            return self
        X, y = validate_data(
            self,
            X,
            y,
            reset=False,
            accept_sparse="csr",
            dtype=self.coefs_[0].dtype,
            order="C",
            multi_output=True,
        )
        y = column_or_1d(y)
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        _warn_if_unscaled(X)
        self._fit_erasure_state(X, np.searchsorted(self.classes_, y), sample_weight)
        return self

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one pass over the data; drops the erasure state.

        As :meth:`MLPClassifier.partial_fit`. The stored curvature cannot follow
        an incremental update, so it is discarded: call :meth:`fit` before the
        next :meth:`partial_forget`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            Classes across all calls to partial_fit (required on the first call).

        Returns
        -------
        self : object
            Trained MLP model.
        """
        self._drop_erasure_state()
        return super().partial_fit(X, y, sample_weight=sample_weight, classes=classes)

    def _check_erasable(self):
        check_is_fitted(self)
        if self._is_multilabel():
            raise ValueError(
                "partial_forget does not support multi-label targets (2-D y): "
                "ErasableMLPClassifier erases rows of single-label (binary or "
                "multiclass) models only"
            )
        if "erasure_state_" not in self.__dict__:
            raise NotFittedError(
                "the erasure state was dropped by partial_fit (the stored curvature "
                "cannot follow incremental updates); call fit before partial_forget"
            )

    def _is_multilabel(self):
        return self._label_binarizer.y_type_.startswith("multilabel")

    def _drop_erasure_state(self):
        self.__dict__.pop("erasure_state_", None)

    # -- hooks of ErasableMixin ------------------------------------------------------
    def _erasure_maths(self):
        units = [self.n_features_in_]
        units += [W.shape[1] for W in self.coefs_]
        return MLPMaths(units, self.activation)

    def _erasure_maths_for(self, n_features, n_classes):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        n_outputs = 1 if n_classes == 2 else n_classes
        return MLPMaths([n_features, *hidden, n_outputs], self.activation)

    def _objective_scaling(self):
        # (Σ w_i ℓ_i + ½ alpha ‖W‖²) / Σ w_i: C = 1, penalty alpha on the weights.
        mask = self._erasure_maths().weight_mask().astype(self.coefs_[0].dtype)
        return 1.0, float(self.alpha), mask

    def _damping_mask(self, penalized):
        # Damping on *every* coordinate (the paper's F̂₀ = λ·I): a network's
        # intercepts can be flat for the data (saturated or dead units, confident
        # outputs), and with only the engine's √eps floor there the step explodes.
        return np.ones_like(penalized)

    def _damping_value(self, penalty_strength, blocks, C):
        if self.damping != "auto":
            return super()._damping_value(penalty_strength, blocks, C)
        # alpha + κ · (mean diagonal of the data curvature): a Levenberg–Marquardt
        # damping relative to the curvature's own scale (see the docstring).
        diagonal = np.concatenate([np.diag(block) for block in blocks])
        scale = C * float(diagonal.mean()) if diagonal.size else 0.0
        return penalty_strength + AUTO_DAMPING * scale

    def _compute_forget(self, request, step=None):
        if step is None:
            step = partial(self._step, request)
        return super()._compute_forget(request, step)

    def _step(self, request, gradient, inverse, new_inverse):
        """``−ε t M⁻¹ ∇J_{-S}``, see ``linearization`` and ``step_length``."""
        if self.linearization == "fit":
            gradient = self._gradient_from_fit_point(request)
        step_inverse = new_inverse if self.leave_out else inverse
        direction = -step_inverse.apply(gradient)
        t = 1.0
        if self.step_length == "line_search":
            t = self._line_search(request, gradient, direction)
        return self.forget_scale * t * direction

    def _gradient_from_fit_point(self, request):
        """``∇J_{-S}`` in the quadratic model around the fitted parameters ``θ*``.

        ``r − Σ_{i∈S} w_i [g_i(θ*) + K_i(θ*)(θ − θ*)]``: the forgotten rows'
        gradients taken where the curvature was built, moved to the current
        parameters by that same curvature. Every request then solves the same
        model, so a sequence of requests (``forget_scale=1``, ``leave_out``) lands
        where one request of all their rows would.
        """
        X, y, sample_weight, state, theta = request[:5]
        maths = self._erasure_maths()
        active = state.class_counts > 0
        weights = sample_weight.astype(theta.dtype)
        at_fit = maths.gradient_sums(
            X, y, weights, state.point, active, len(self.classes_)
        ).sum(axis=0)
        moved = theta - state.point
        if np.any(moved):
            at_fit = at_fit + maths.curvature_product(
                X, y, weights, state.point, moved, self._curvature_kind()
            )
        return state.residual_gradient - at_fit

    def _line_search(self, request, gradient, direction):
        """``t* ∈ (0, 1]`` minimising the method's own model along ``d``.

        Along ``d = −M⁻¹ ∇J_{-S}`` the objective without ``S`` is modelled as the
        quadratic model of the current objective (the stored curvature, gradient
        ``r``: what the method assumes about the rows it no longer sees) minus the
        *exact* loss of the forgotten rows (which it has)::

            φ(t) = t rᵀd + ½ t² dᵀ M d − Σ_{i∈S} w_i [ℓ_i(θ + t d) − ℓ_i(θ)]

        With an exact quadratic loss on ``S`` the minimiser is the Newton step,
        ``t* = 1``; where the loss of ``S`` flattens (rows pushed past their
        decision boundary) it stops earlier. It never lengthens the step.
        """
        X, y, sample_weight, state, theta = request[:5]
        maths = self._erasure_maths()
        kind = self._curvature_kind()
        weights = sample_weight.astype(direction.dtype)
        # dᵀ M d with M the curvature before the request: M_step d = −∇J_{-S}.
        quadratic = -float(direction @ gradient)
        if self.leave_out:
            quadratic += maths.curvature_quadratic(
                X, y, weights, state.point, direction, kind
            )
        linear = float(state.residual_gradient @ direction)
        active = state.class_counts > 0
        base = weights @ maths.losses(X, y, theta, active)

        def model(t):
            moved = weights @ maths.losses(X, y, theta + t * direction, active)
            value = t * linear + 0.5 * t * t * quadratic - (moved - base)
            return value if np.isfinite(value) else np.inf

        return _minimise_on_log_grid(model, low=2.0**-12, high=1.0)

    def _zero_forgotten_classes(self, theta, active):
        # A vanished class's own parameters (its output unit's incoming weights and
        # intercept) must not keep what they learnt from its rows: clear them. A
        # binary model's one output unit serves both classes.
        maths = self._erasure_maths()
        if maths.n_outputs == 1 or np.all(active):
            return theta
        start, w_stop, b_stop = maths.layer_slices[-1]
        theta = theta.copy()
        theta[start:w_stop].reshape(-1, maths.n_outputs)[:, ~active] = 0
        theta[w_stop:b_stop][~active] = 0
        return theta

    def _get_flat_params(self):
        return self._erasure_maths().pack(self.coefs_, self.intercepts_)

    def _flat_params_attributes(self, theta):
        coefs, intercepts = self._erasure_maths().unpack(theta)
        return {"coefs_": coefs, "intercepts_": intercepts}

    def _check_update(self, theta_new, X):
        """Refuse parameters under which the network's outputs on the request's
        rows are not finite (an overflowing step: features far from unit scale)."""
        view = object.__new__(type(self))
        view.__dict__ = {**self.__dict__, **self._flat_params_attributes(theta_new)}
        with np.errstate(all="ignore"):
            outputs = MLPClassifier._forward_pass_fast(view, X, check_input=False)
        if not np.all(np.isfinite(outputs)):
            raise ErasureNumericalError(
                "the update would make the network's outputs non-finite on the "
                "request's rows (its inputs are probably far from unit scale: scale "
                "them before fit); refit instead. The model is unchanged."
            )

    # -- predictions of a model that forgot whole classes ---------------------------
    def _inactive_classes(self):
        """Boolean mask of the vanished classes, or None when none vanished."""
        state = self.__dict__.get("erasure_state_")
        if state is None or np.all(state.class_counts > 0):
            return None
        return state.class_counts == 0

    def _forward_pass_fast(self, X, check_input=True):
        # Every prediction of MLPClassifier (predict, predict_proba, score) goes
        # through here: mask the vanished classes, otherwise change nothing. It
        # reads one snapshot of the published model (never a half-published one).
        view = self._snapshot()
        inactive = view._inactive_classes()
        if inactive is None:
            return super(ErasableMLPClassifier, view)._forward_pass_fast(
                X, check_input=check_input
            )
        if check_input:
            X = validate_data(view, X, accept_sparse=["csr", "csc"], reset=False)
        if view.n_outputs_ == 1:
            # Binary model left with one class: it is predicted with certainty.
            dtype = np.result_type(X.dtype, view.coefs_[0].dtype)
            return np.full((X.shape[0], 1), float(not inactive[1]), dtype=dtype)
        return view._erasure_maths().forward(X, view._get_flat_params(), ~inactive)[-1]

    def predict_log_proba(self, X):
        """Log of probability estimates; ``-inf`` for vanished classes.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        with np.errstate(divide="ignore"):
            return super().predict_log_proba(X)


def _minimise_on_log_grid(function, low, high, per_octave=8):
    """Minimiser of a scalar function of ``t > 0`` on a log-spaced grid, refined.

    ``per_octave`` points per doubling between ``low`` and ``high``; the best grid
    point is then refined by a parabola through it and its two neighbours (in
    ``log t``), kept only if it is better.
    """
    exponents = np.arange(
        np.floor(np.log2(low) * per_octave), np.ceil(np.log2(high) * per_octave) + 1
    )
    grid = 2.0 ** (exponents / per_octave)
    values = np.array([function(t) for t in grid])
    best = int(np.argmin(values))
    if 0 < best < len(grid) - 1 and np.all(np.isfinite(values[best - 1 : best + 2])):
        x = np.log(grid[best - 1 : best + 2])
        a, b, _ = np.polyfit(x, values[best - 1 : best + 2], 2)
        if a > 0:
            candidate = float(np.exp(-b / (2 * a)))
            if function(candidate) < values[best]:
                return candidate
    return float(grid[best])
