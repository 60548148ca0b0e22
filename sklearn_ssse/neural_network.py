"""ErasableMLPClassifier: MLPClassifier plus ``partial_forget`` (the paper's §5.3)."""

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

__all__ = ["ErasableMLPClassifier"]


class ErasableMLPClassifier(ErasableMixin, MLPClassifier):
    """Multi-layer perceptron classifier that can forget training rows.

    A drop-in :class:`~sklearn.neural_network.MLPClassifier`: every parameter,
    fitted attribute and prediction is the same (``fit`` runs MLPClassifier's own
    ``fit`` and gives the same ``coefs_`` bit for bit). ``fit`` additionally stores
    the inverse of a block-diagonal empirical Fisher at the fitted weights;
    :meth:`partial_forget` then erases rows in one closed-form Newton-type step
    (SSSE, the paper's non-convex setting) that needs only those rows.

    MLPClassifier minimises ``(Σ_i w_i ℓ_i + ½ alpha ‖W‖²) / Σ_i w_i`` (log-loss
    ``ℓ_i``, ``w_i`` the sample weights, ``‖W‖²`` over the weight matrices only, not
    the intercepts), whose minimiser is that of ``Σ_i w_i ℓ_i + ½ alpha ‖W‖²``.
    Forgetting rows ``S`` moves the parameters by ``ε · M⁻¹ · Σ_{i∈S} w_i ∇ℓ_i``
    with ``M = λ·I + Σ_i w_i g_i g_iᵀ`` (``g_i = ∇ℓ_i`` by backpropagation; the
    paper's damped empirical Fisher), and takes the rows out of ``M``.

    Parameters
    ----------
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, \
warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction, \
beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in :class:`~sklearn.neural_network.MLPClassifier`. Every activation is
        supported. Multi-label targets (2-D ``y``) are fitted as MLPClassifier
        fits them, but :meth:`partial_forget` refuses them.

    forget_scale : float, default=1.0
        The step scale ε > 0 of the paper. The Fisher of a network needs a tuned
        value (choose it once on a calibration deletion with one refit; see
        ``examples/plot_mlp_erasure.py``). May be changed after ``fit``.

    leave_out : bool, default=True
        Whether the step uses the curvature with the forgotten rows already taken
        out (the paper's leave-k-out variant). May be changed after ``fit``.

    damping : float or None, default=None
        λ ≥ 0 added to every coordinate of ``M``, intercepts included (the
        paper's ``F̂₀ = λ·I``: a network's intercepts can be flat for the data, at
        saturated or dead units and confident outputs). ``None``: ``alpha``, the
        regulariser's own curvature on the weights. A floor of
        ``√eps × mean(diag of Σ w_i g_i g_iᵀ)`` keeps ``alpha=0`` invertible. A
        larger value makes the step more like a gradient step.

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

    **Sequential requests.** Each step uses the gradients at the current weights
    but the Fisher measured at the fitted ones. Once an earlier request has pushed
    some rows far from their fitted predictions, their gradients are large where
    the stored curvature is small, and a later request moves much further than the
    first; for a network, prefer erasing a group in one request.

    **Non-convexity.** The update is a single Fisher-preconditioned step from the
    fitted weights; a refit of a network lands in a different local minimum, even
    from the same ``random_state``. Fidelity is measured as in the paper, on the
    predictions (normalised confusion distance, accuracy on four splits).

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
        "forget_scale": [Interval(Real, 0, None, closed="neither")],
        "leave_out": ["boolean"],
        "damping": [Interval(Real, 0, None, closed="left"), None],
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
        forget_scale=1.0,
        leave_out=True,
        damping=None,
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
