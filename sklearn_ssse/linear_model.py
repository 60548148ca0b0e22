"""ErasableLogisticRegression: LogisticRegression plus ``partial_forget``."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.linear_model import LogisticRegression
from sklearn.utils._array_api import get_namespace, move_to
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_sample_weight, validate_data

from . import _array_api
from ._curvature_structures import STRUCTURES
from ._logistic_maths import LogisticMaths
from .base import ErasableMixin
from .exceptions import ErasureNumericalError

__all__ = ["ErasableLogisticRegression"]


class ErasableLogisticRegression(ErasableMixin, LogisticRegression):
    """Logistic regression that can forget training rows without retraining.

    A drop-in :class:`~sklearn.linear_model.LogisticRegression`: every parameter,
    fitted attribute and prediction is the same (``fit`` returns the same ``coef_``
    bit for bit). ``fit`` additionally stores the inverse curvature of the objective
    at the solution; :meth:`partial_forget` then erases rows in one closed-form
    Newton-type step (SSSE, single-step sample erasure) that needs only those rows.

    The objective is scikit-learn's ``C Σ_i w_i ℓ_i(θ) + ½‖coef‖²`` with
    ``w_i = sample_weight_i · class_weight[y_i]``. Forgetting rows ``S`` moves the
    parameters by ``ε · M⁻¹ · C Σ_{i∈S} w_i ∇ℓ_i`` where ``M = λ·P + C Σ_i w_i K_i``
    (``P``: the penalty's diagonal; ``K_i``: the per-sample empirical Fisher
    ``g_i g_iᵀ`` or the Hessian), and takes the rows out of ``M``.

    Parameters
    ----------
    penalty, C, l1_ratio, dual, tol, fit_intercept, intercept_scaling, class_weight, \
random_state, solver, max_iter, verbose, warm_start, n_jobs
        As in :class:`~sklearn.linear_model.LogisticRegression`. The erasure needs
        a twice-differentiable objective: ``l1_ratio > 0`` (L1 or elastic-net) is
        refused at ``fit``. ``C=np.inf`` (no penalty) is supported; so is
        ``solver="liblinear"``, whose penalised intercept is handled exactly.

    forget_scale : float, default=1.0
        The step scale ε of the paper, in ``(0, 100]``. ``1.0`` is the theory's
        value for the Hessian; the Fisher wants a calibrated value (see
        :mod:`sklearn_ssse.model_selection`). May be changed after ``fit``.

    curvature : {"hessian", "fisher"}, default="hessian"
        ``"hessian"``: the exact Hessian of the objective (the influence-function
        update, a Newton step on the remaining objective). ``"fisher"``: the
        empirical Fisher ``Σ w_i g_i g_iᵀ`` of the paper (SSSE), which needs a
        calibrated ``forget_scale``. Both are analytic.

        The Hessian is the default because it is the one that cannot wreck a
        model: over 50 sequential requests of 1 % of the rows each it stays
        within a few thousandths of the refit's accuracy, while the Fisher at
        ε = 1 overshoots at every step and the error compounds (README,
        "Sequential requests"). Changed in 0.2 (was ``"fisher"``).

    leave_out : bool, default=True
        Whether the step uses the curvature with the forgotten rows already taken
        out (the paper's leave-k-out variant). It is the default because it is
        closer to retraining in every measurement we made (README, "Fidelity") and
        costs nothing extra: the rows are taken out of the stored curvature either
        way. May be changed after ``fit``.

    damping : float or None, default=None
        λ ≥ 0 on the penalised coordinates of ``M``. ``None``: the penalty's own
        strength (1 in this scaling, 0 when ``C=np.inf``), so that ``λ·P`` is the
        regulariser's curvature. A floor of ``√eps × mean(diag of C Σ w_i K_i)`` is
        added to every coordinate so that unpenalised ones (intercept, ``C=np.inf``)
        stay invertible.

    block_size : None, "class" or int, default=None
        Structure of the stored curvature. ``None``: one dense block over all
        ``n_classes' × (n_features + 1)`` coordinates. ``"class"``: one block per
        row of ``coef_``. int ``B``: consecutive blocks of at most ``B``
        coordinates, as in the paper. Memory is the sum of squared block sizes.

    fisher_batch_size : int, default=1
        Build the Fisher from gradients summed over shuffled mini-batches of that
        many rows (the paper's cheaper approximation, ``b`` times fewer rows in
        the products; ``random_state`` sets the shuffle). With ``> 1``, forgotten
        rows are taken out of the curvature by their own outer products, which is
        their contribution in expectation only, and never more than the estimate
        holds (the remaining data term is projected onto the positive
        semi-definite cone, ``O(d³)`` per block and request).

    curvature_structure : {"auto", "blocks", "cg", "cg-class"}, default="auto"
        How ``M`` is stored (docs/curvature.md). ``"blocks"``: the dense inverse
        of each block of ``block_size``; memory ``Σ_b B_b²``. ``"cg"``: ``M``
        itself, exact, in blocks over pairs of classes (sparse for sparse ``X``:
        memory grows with the pairs of co-occurring features, not with
        ``n_features²``), and ``M⁻¹`` by preconditioned conjugate gradient;
        requests take their rows out exactly and cost ``O(k · n_features²)``
        dense, not ``O(n_params² · k)``. ``"cg-class"``: as ``"cg"`` without the
        curvature between different classes (``block_size="class"``'s
        approximation). ``"auto"``: ``"blocks"`` when its inverse fits the
        memory budget, otherwise ``"cg"``, or ``"cg-class"``. Chosen at ``fit``
        (``curvature_structure_``).

    Attributes
    ----------
    classes_, coef_, intercept_, n_features_in_, feature_names_in_, n_iter_
        As in :class:`~sklearn.linear_model.LogisticRegression`; ``coef_`` and
        ``intercept_`` change with every :meth:`partial_forget`.

    curvature_inverse_ : BlockDiagonalInverse or ConjugateGradientCurvature
        ``M`` over the rows not forgotten yet: its inverse block by block
        (``"blocks"``), or ``M`` itself (``"cg"``, ``"cg-class"``).

    curvature_point_ : ndarray of shape (n_params,)
        The fitted parameters at which ``M`` was built (flattened
        ``[coef_ | intercept_]`` rows).

    damping_diagonal_ : ndarray of shape (n_params,)
        The damping λ·P plus the floor, as added to ``M``'s diagonal.

    residual_gradient_ : ndarray of shape (n_params,)
        Gradient of the objective left by the solver at ``fit``; the first request
        cancels it, later ones see zeros.

    class_counts_ : ndarray of shape (n_classes,)
        Training rows of each class not forgotten yet.

    class_weight_sums_ : ndarray of shape (n_classes,)
        Sum of the sample weights of those rows.

    fit_class_weight_ : ndarray of shape (n_classes,)
        The class weights used in ``fit``.

    class_gradient_sums_ : ndarray of shape (n_classes, n_params) or None
        Per-class gradient sums at the fit, kept only for
        ``class_weight="balanced"`` (see Notes).

    curvature_params_ : dict
        The values of the parameters the stored curvature depends on (the
        objective's ``C``, ``class_weight``, ``fit_intercept``, ... and
        ``curvature``, ``damping``, ``block_size``, ``fisher_batch_size``) at
        ``fit``; changing one of them makes :meth:`partial_forget` ask for a new
        fit.

    n_forgotten_ : int
        Number of rows forgotten since ``fit``.

    curvature_structure_ : str
        The structure ``fit`` chose (``"auto"`` resolved).

    Notes
    -----
    **A class whose rows are all forgotten.** A refit would never see it, so the
    model stops predicting it: ``classes_`` keeps its shape (so do
    ``predict_proba`` columns), the class's column of ``decision_function`` is
    ``-inf`` and of ``predict_proba`` is 0, and its row of ``coef_`` and
    ``intercept_`` is zero (nothing learnt from those rows is kept). For a binary
    model the remaining class is then predicted for every row
    (``decision_function`` is ``±inf``), which is what a refit, unable to train on
    one class, would have to fall back to.
    Forgetting every remaining row is refused.

    **class_weight="balanced".** The weights of the *remaining* rows change with
    each request; the step includes this exactly to first order through per-class
    gradient sums (memory ``n_classes × n_params``). The stored curvature keeps
    the fit's weights.

    **Errors.** Any error in :meth:`partial_forget` leaves the model exactly as it
    was.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = ErasableLogisticRegression(curvature="hessian").fit(X, y)
    >>> clf.partial_forget(X[:5], y[:5]).n_forgotten_
    5
    >>> clf.class_counts_.tolist()
    [207, 357]
    """

    _parameter_constraints: dict = {
        **LogisticRegression._parameter_constraints,
        "forget_scale": [Interval(Real, 0, 100, closed="right")],
        "curvature": [StrOptions({"fisher", "hessian"})],
        "leave_out": ["boolean"],
        "damping": [Interval(Real, 0, None, closed="left"), None],
        "block_size": [
            None,
            StrOptions({"class"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "fisher_batch_size": [Interval(Integral, 1, None, closed="left")],
        "curvature_structure": [StrOptions(set(STRUCTURES))],
    }

    def __init__(
        self,
        penalty="deprecated",
        *,
        C=1.0,
        l1_ratio=0.0,
        dual=False,
        tol=1e-4,
        fit_intercept=True,
        intercept_scaling=1,
        class_weight=None,
        random_state=None,
        solver="lbfgs",
        max_iter=100,
        verbose=0,
        warm_start=False,
        n_jobs=None,
        forget_scale=1.0,
        curvature="hessian",
        leave_out=True,
        damping=None,
        block_size=None,
        fisher_batch_size=1,
        curvature_structure="auto",
    ):
        super().__init__(
            penalty=penalty,
            C=C,
            l1_ratio=l1_ratio,
            dual=dual,
            tol=tol,
            fit_intercept=fit_intercept,
            intercept_scaling=intercept_scaling,
            class_weight=class_weight,
            random_state=random_state,
            solver=solver,
            max_iter=max_iter,
            verbose=verbose,
            warm_start=warm_start,
            n_jobs=n_jobs,
        )
        self.forget_scale = forget_scale
        self.curvature = curvature
        self.leave_out = leave_out
        self.damping = damping
        self.block_size = block_size
        self.fisher_batch_size = fisher_batch_size
        self.curvature_structure = curvature_structure

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit exactly as LogisticRegression, then store the erasure state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training vectors.
        y : array-like of shape (n_samples,)
            Target labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights; ones when ``None``.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        self._check_twice_differentiable()
        with self._erasure_lock():  # no request may interleave with a refit
            self.__dict__.pop("erasure_state_", None)
            # LogisticRegression's fit sees the caller's X, so that it sets
            # n_features_in_ and feature_names_in_ itself; the validated copy below
            # (the same conversion it made) is for the erasure state.
            super().fit(X, y, sample_weight=sample_weight)
            xp_in, _ = get_namespace(X)  # NumPy unless array_api_dispatch is on
            X, y = validate_data(
                self,
                X,
                y,
                reset=False,
                accept_sparse="csr",
                dtype=[xp_in.float64, xp_in.float32],
                order="C",
                accept_large_sparse=self.solver not in ["liblinear", "sag", "saga"],
            )
            xp, device = _array_api.namespace(X)
            if xp is not None and sample_weight is not None:
                # As LogisticRegression.fit: the weights follow X.
                sample_weight = move_to(sample_weight, xp=xp, device=device)
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
            # Class indices: label bookkeeping on the host, as LogisticRegression's
            # own LabelEncoder (the identity for NumPy labels).
            y = np.searchsorted(
                _array_api.to_numpy(self.classes_), _array_api.to_numpy(y)
            )
            self._fit_erasure_state(X, y, sample_weight)
        return self

    def _check_twice_differentiable(self):
        if self.fisher_batch_size > 1 and self.curvature != "fisher":
            raise ValueError(
                f"fisher_batch_size={self.fisher_batch_size} estimates the empirical "
                f"Fisher from mini-batches; it needs curvature='fisher', not "
                f"{self.curvature!r} (use fisher_batch_size=1 with the Hessian)"
            )
        penalty = self.penalty
        if penalty in ("l1", "elasticnet") or (
            penalty == "deprecated"
            and self.l1_ratio is not None
            and self.l1_ratio > 0
            and self.C != np.inf
        ):
            raise ValueError(
                "ErasableLogisticRegression needs a twice-differentiable objective, "
                "and an L1 or elastic-net penalty (l1_ratio > 0) is not: its "
                "curvature is undefined where coefficients are zero. Use l1_ratio=0 "
                "(the L2 penalty) or C=np.inf (no penalty)."
            )

    # -- hooks of ErasableMixin ------------------------------------------------------
    def _erasure_maths(self):
        return LogisticMaths(
            n_features=self.n_features_in_,
            n_classes=self.classes_.shape[0],
            fit_intercept=self.fit_intercept,
            intercept_scaling=self.intercept_scaling
            if self._intercept_penalized()
            else 1.0,
        )

    def _check_remaining_rows(self, n_remaining):
        _, penalty_strength, _ = self._objective_scaling()
        maths = self._erasure_maths()
        # A softmax is unchanged by adding one vector to every class's row.
        free = maths.n_params - (maths.width if maths.n_outputs > 1 else 0)
        if penalty_strength == 0 and n_remaining <= free:
            raise ErasureNumericalError(
                f"without a penalty (C=np.inf) the {n_remaining} remaining rows "
                f"cannot determine the model's {free} free parameters: the objective "
                "has no unique minimiser, so no update can match a refit. Use a "
                "finite C (the erasure then holds for any number of rows)"
            )

    def _intercept_penalized(self):
        # liblinear fits the intercept as a penalised synthetic feature.
        return self.solver == "liblinear" and self.fit_intercept

    def _objective_scaling(self):
        maths = self._erasure_maths()
        dtype = self.coef_.dtype if _array_api.is_numpy(self.coef_) else np.float64
        penalized = maths.coef_mask().astype(dtype)
        if self._intercept_penalized():
            penalized[:] = 1
        unpenalized = self.penalty is None or self.C == np.inf
        C = 1.0 if unpenalized else float(self.C)
        return C, 0.0 if unpenalized else 1.0, penalized

    def _get_flat_params(self):
        return self._erasure_maths().pack(self.coef_, self.intercept_)

    def _flat_params_attributes(self, theta):
        coef, intercept = self._erasure_maths().unpack(theta)
        return {"coef_": coef, "intercept_": intercept}

    def _zero_forgotten_classes(self, theta, active):
        maths = self._erasure_maths()
        if maths.n_outputs == 1 or np.all(active):
            return theta  # a binary model's one row serves both classes
        xp, device = _array_api.namespace(theta)
        if xp is not None:
            Theta = xp.reshape(theta, (maths.n_outputs, maths.width))
            live = _array_api.to_device(np.asarray(active), xp, device)
            return xp.reshape(xp.where(live[:, None], Theta, 0.0), (-1,))
        theta = theta.reshape(maths.n_outputs, maths.width).copy()
        theta[~active] = 0
        return theta.ravel()

    def _class_weights(self, weight_sums, active):
        if self.class_weight == "balanced":
            weights = np.zeros(len(weight_sums))
            live = active & (weight_sums > 0)
            weights[live] = weight_sums[live].sum() / (live.sum() * weight_sums[live])
            return weights
        classes = _array_api.to_numpy(self.classes_)  # class-sized, on the host
        return _array_api.to_numpy(
            compute_class_weight(self.class_weight, classes=classes, y=classes)
        )

    def _class_weights_depend_on_data(self):
        return self.class_weight == "balanced"

    def _curvature_params(self):
        # The objective's own parameters shape the stored curvature as well.
        params = super()._curvature_params()
        for name in (
            "C",
            "class_weight",
            "fit_intercept",
            "intercept_scaling",
            "solver",
            "penalty",
            "l1_ratio",
        ):
            params[name] = getattr(self, name)
        return params

    # -- predictions of a model that forgot whole classes ---------------------------
    def decision_function(self, X):
        """Confidence scores; ``-inf`` for classes whose rows were all forgotten.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The data matrix for which we want to get the confidence scores.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            As :meth:`LogisticRegression.decision_function`. For a binary model
            left with one class, ``+inf`` (positive class left) or ``-inf``.
        """
        # One snapshot of the published model: coef_, intercept_ and the class
        # counts of the same instant, even while a request is being published.
        view = self._snapshot()
        scores = super(ErasableLogisticRegression, view).decision_function(X)
        state = view.__dict__.get("erasure_state_")
        counts = None if state is None else state.class_counts
        if counts is None or np.all(counts > 0):
            return scores
        active = counts > 0
        xp, device = _array_api.namespace(scores)
        if xp is not None:  # on the scores' device; the mask is n_classes bools
            if scores.ndim == 1:
                return xp.full_like(scores, xp.inf if active[1] else -xp.inf)
            live = _array_api.to_device(active, xp, device)
            return xp.where(live[None, :], scores, -xp.inf)
        if scores.ndim == 1:
            return np.full_like(scores, np.inf if active[1] else -np.inf)
        scores[:, ~active] = -np.inf
        return scores

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # As LogisticRegression: the array API with lbfgs (dense input). The
        # erasure state then lives on the data's device (see _array_api.py).
        tags.array_api_support = self.solver == "lbfgs"
        return tags
