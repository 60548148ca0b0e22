"""ErasableLogisticRegression: LogisticRegression plus ``partial_forget``."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.utils._array_api import get_namespace, move_to
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from . import _array_api
from ._compat import LOGISTIC_CV_SCORING_DEFAULT
from ._curvature_structures import (
    STRUCTURES,
    approximate_candidates,
    structure_candidates,
)
from ._logistic_maths import LogisticMaths
from ._memory import block_estimate, check_memory_budget
from ._options import resolve_erasure_options
from ._perturbation import (
    draw_perturbation,
    gradient_budget,
    perturbed_minimiser,
    perturbed_objective,
)
from .base import ErasableMixin, PartialForgetRequestMixin
from .exceptions import ErasureNumericalError

__all__ = ["ErasableLogisticRegression", "ErasableLogisticRegressionCV"]


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
random_state, solver, max_iter, warm_start, n_jobs
        As in :class:`~sklearn.linear_model.LogisticRegression`. ``C=np.inf``
        (no penalty) is supported; so is ``solver="liblinear"``, whose penalised
        intercept is handled exactly. With ``l1_ratio > 0`` (L1 or elastic-net,
        solvers ``"liblinear"`` and ``"saga"``) the objective has no curvature
        where a coefficient is zero: the step is taken on the *active set* (the
        non-zero coefficients and the unpenalised intercept), coefficients at zero
        stay at zero, and the stored curvature covers the active set only
        (``docs/l1.md`` says what this approximates).
        ``n_jobs`` is deprecated by scikit-learn and has no effect: the build of
        the erasure state runs in parallel under a
        :func:`joblib.parallel_config` context (e.g. ``n_jobs=4``, or
        ``backend="dask"`` to use a cluster).

    verbose : int, default=0
        As in :class:`~sklearn.linear_model.LogisticRegression`; any positive
        value also prints the erasure state's memory estimate and the build's
        progress (every few seconds; every chunk of rows from ``verbose=2``).

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

    linearization : {"fit", "current"}, default="fit"
        Where the forgotten rows' gradients are taken. ``"fit"``: at the fitted
        parameters ``θ*`` (where the stored curvature was built), moved to the
        current parameters by that curvature: every request then solves the same
        quadratic model, so a sequence of requests lands where one request of all
        their rows would, and errors cannot compound. ``"current"``: at the current
        parameters (the paper's step; after many requests the curvature at ``θ*``
        no longer matches there and the error compounds: on digits 50 requests of
        1 % took test accuracy from 0.97 to 0.01, against 0.957 with ``"fit"``; see
        the README, "Sequential requests"). Identical for the first request. May be
        changed after ``fit``.

    damping : float or None, default=None
        λ ≥ 0 on the penalised coordinates of ``M``. ``None``: the L2 penalty's own
        strength (``1 − l1_ratio`` in this scaling, 0 when ``C=np.inf``), so that
        ``λ·P`` is the regulariser's curvature. A floor of
        ``√eps × mean(diag of C Σ w_i K_i)`` is added to every coordinate so that
        unpenalised ones (intercept, ``C=np.inf``) stay invertible.

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

    memory_budget : "auto", float or None, default="auto"
        Memory, in MiB, that the erasure state may take at its peak (while it is
        built, or while a request holds the old and new state). ``fit`` estimates
        it from the shape of the data *before* the solver runs and raises
        :class:`~sklearn_ssse._memory.CurvatureMemoryError` (a ``ValueError``)
        when it does not fit, naming the options that do (smaller
        ``block_size``, float32 data); except that under
        ``curvature_structure="auto"`` (and ``block_size=None``) ``fit`` first
        falls back to the most faithful approximation that fits and warns (see
        ``curvature_structure``). ``"auto"``: half of the machine's
        physical memory. ``None``: no check. The dense curvature takes
        ``itemsize × Σ_blocks size²`` bytes: a block over 28 000 text features
        is 6.3 GB in float64.
    certificate_budget : float or None, default=1e5
        When to recommend a refit. Every request carries a data-free
        certificate (:mod:`sklearn_ssse.certificate`): a rigorous upper bound on
        the gradient of the remaining objective at the updated parameters,
        accumulated over requests. Its ``relative_gradient_bound`` divides it by
        the gradient that ignoring the requests would have left. Past
        ``certificate_budget`` the request signals "refit recommended" (see
        ``on_budget``). The bound is conservative (30–3 000× the true residual
        on the bundled data sets, ``benchmarks/results/certificate.md``), so the
        default comes from measurements: silent on ordinary requests (50 × 1 %
        of breast_cancer: up to 400; 1 % requests on digits: 10⁴–6·10⁴), it
        fires where a step goes wrong (``C=1e4`` on breast_cancer, 5 %:
        3·10⁵; a 50 × 1 % soak on digits whose accuracy collapses from the 37th
        request: 1.1·10⁵ there). ``None``: no check. May be changed after
        ``fit``.

        The certificate costs a ``(n_features + 1)²`` Gram matrix per model
        (its diagonal only with ``block_size`` set or ``"cg-class"``, whose
        bound is then looser; ``"cg"`` keeps it over its sparse pattern, one
        more block of values; ``"cg-rows"`` computes it from its rows);
        ``class_weight="balanced"`` models get no certificate.

    on_budget : {"warn", "raise"} or callable, default="warn"
        What happens past the budget: a
        :class:`~sklearn_ssse.exceptions.RefitRecommendedWarning` (the request
        is applied), or a :class:`~sklearn_ssse.exceptions.RefitRecommendedError`
        (the request is not applied and the model is unchanged: refit without
        the rows). A callable (opt-in policy) returns the remaining training
        rows, ``(X, y)`` or ``(X, y, sample_weight)`` (arrays, memory-mapped
        arrays or chunks, as :func:`~sklearn_ssse.reconcile.reconcile` takes
        them): the request is applied and the model is then reconciled with
        them, which its records say. May be changed after ``fit``.
    curvature_structure : {"auto", "blocks", "cg", "cg-class", "cg-rows"}, \
            default="auto"
        How ``M`` is stored (docs/curvature.md). ``"blocks"``: the dense inverse
        of each block of ``block_size``; memory ``Σ_b B_b²``. ``"cg"``: ``M``
        itself, exact, in blocks over pairs of classes (sparse for sparse ``X``:
        memory grows with the pairs of co-occurring features, not with
        ``n_features²``), and ``M⁻¹`` by preconditioned conjugate gradient;
        requests take their rows out exactly and cost ``O(k · n_features²)``
        dense, not ``O(n_params² · k)``. ``"cg-class"``: as ``"cg"`` without the
        curvature between different classes (``block_size="class"``'s
        approximation). ``"cg-rows"`` (opt-in only): the same matrix as ``"cg"``
        kept as the training rows themselves, 10–50× faster to build and to
        apply on text; **the fitted model (and any pickle of it) then contains
        the remaining training rows**, so keep it as securely as the data.
        ``"auto"``: the first of ``"blocks"``, ``"cg"``, ``"cg-class"`` whose
        peak memory fits ``memory_budget`` (on sparse data ``"cg"`` comes first
        when the dense blocks would store more than it and at least one block of
        2 048 coordinates);
        never ``"cg-rows"``. The check before the solver and the build make the
        same choice, except that ``"cg"`` with several classes becomes
        ``"cg-class"`` when a request on its pair blocks might cost half a
        refit or more (counted in operations against the solver's, once the
        sparse pattern is known). Chosen at ``fit`` (``curvature_structure_``);
        when the chosen ``"cg"`` structure's requests might still cost that
        much, ``fit`` warns with
        :class:`~sklearn_ssse.exceptions.CostlyErasureWarning`. When none of
        the exact structures fits ``memory_budget``, ``"auto"`` does not
        refuse: it takes the first that fits of ``"cg-class"``, then dense
        blocks of the largest power-of-two ``block_size`` up to 2 048
        (block-diagonal), down to ``block_size=1`` (the diagonal), and warns
        with :class:`~sklearn_ssse.exceptions.ApproximateCurvatureWarning`
        (docs/scaling.md); an explicit structure or ``block_size`` that does
        not fit is refused.

    removal_noise : float or None, default=None
        Opt-in **certified removal** (objective perturbation, Guo et al. 2020,
        "Certified Data Removal from Machine Learning Models"). ``None`` (the
        default): ``fit`` is exactly :class:`~sklearn.linear_model.LogisticRegression`.
        A float ``σ > 0``: ``fit`` minimises ``C Σ w_i ℓ_i + ½‖coef‖² + bᵀθ``
        over every parameter ``θ`` (the intercept included) with
        ``b ~ N(0, σ² I)``, by L-BFGS warm-started from scikit-learn's solution
        (pure L2 penalty only: an L1 or elastic-net penalty, or ``C=np.inf``,
        raise ``ValueError``). Then, while the certified cumulative gradient bound
        of the requests stays at most ``σ ε / √(2 log(1.5/δ))``, the released
        model is an ``(ε, δ)``-certified removal of every forgotten row: its
        distribution is within ``(ε, δ)`` of that of a model trained, with fresh
        noise, on the remaining rows alone. Each request's certificate records
        it (``certificate["certified_removal"]``, with ``holds``); a request
        that would break it, or that the certificate cannot cover (a whole class
        forgotten, ``class_weight="balanced"``), follows
        ``on_budget``: a :class:`~sklearn_ssse.exceptions.RefitRecommendedWarning`,
        or a :class:`~sklearn_ssse.exceptions.RefitRecommendedError` with the
        model unchanged. Larger ``σ`` allows more requests and costs accuracy
        (``docs/certificate.md``, "Certified removal";
        ``benchmarks/results/certified_removal.md``).

        **b is never stored** on the model nor pickled: anyone holding ``b``
        and the data could tell a removal from a retrain. It is drawn from
        ``random_state``: the default ``None`` draws fresh entropy from the
        operating system; a fixed seed makes ``fit`` reproducible but keeps the
        guarantee only while the seed stays secret, and ``random_state`` is a
        parameter, so it is pickled with the model and shown by
        ``get_params()``. Changing ``removal_noise`` after ``fit`` makes
        requests ask for a new fit. In an
        :class:`~sklearn_ssse.ErasableMultiOutputClassifier` every output draws
        its own ``b`` (seeds derived from ``random_state``, set on each of
        ``estimators_``): one ``b`` shared by the outputs would let anyone with
        the remaining data tell an erasure from a retrain.

    removal_epsilon : float, default=1.0
        ``ε`` of the certified-removal guarantee (``removal_noise`` set).
        May be changed after ``fit``.

    removal_delta : float, default=1e-4
        ``δ`` of the certified-removal guarantee, in ``(0, 1)``. May be changed
        after ``fit``.

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

    request_records_ : RequestLog of RequestRecord
        One record per request since ``fit`` (time, rows per class, ε,
        curvature, leave-out, step size, certificate, library version; no row
        contents), in a read-only sequence that reads like a tuple (indexing,
        slices, iteration) and compares equal to the tuple of its records; a
        request extends it in O(1) amortised time.
        :func:`~sklearn_ssse.certificate.erasure_audit` exports them as JSON or
        a pandas table.
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

    Certified removal: fit with objective perturbation, then forget a row while
    the guarantee holds.

    >>> private = ErasableLogisticRegression(removal_noise=50.0, random_state=0)
    >>> private = private.fit(X, y)
    >>> private = private.partial_forget(X[:1], y[:1])
    >>> guarantee = private.request_records_[-1].certificate["certified_removal"]
    >>> guarantee["holds"], guarantee["epsilon"], guarantee["delta"]
    (True, 1.0, 0.0001)
    >>> "removal_noise" in private.get_params(), hasattr(private, "noise_")
    (True, False)
    """

    _parameter_constraints: dict = {
        **LogisticRegression._parameter_constraints,
        "forget_scale": [Interval(Real, 0, 100, closed="right")],
        "curvature": [StrOptions({"fisher", "hessian"})],
        "leave_out": ["boolean"],
        "linearization": [StrOptions({"fit", "current"})],
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
        "certificate_budget": [Interval(Real, 0, None, closed="left"), None],
        "on_budget": [StrOptions({"warn", "raise"}), callable],
        "curvature_structure": [StrOptions(set(STRUCTURES))],
        "removal_noise": [Interval(Real, 0, None, closed="neither"), None],
        "removal_epsilon": [Interval(Real, 0, None, closed="neither")],
        "removal_delta": [Interval(Real, 0, 1, closed="neither")],
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
        linearization="fit",
        damping=None,
        block_size=None,
        fisher_batch_size=1,
        memory_budget="auto",
        certificate_budget=1e5,
        on_budget="warn",
        curvature_structure="auto",
        removal_noise=None,
        removal_epsilon=1.0,
        removal_delta=1e-4,
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
        self.linearization = linearization
        self.damping = damping
        self.block_size = block_size
        self.fisher_batch_size = fisher_batch_size
        self.memory_budget = memory_budget
        self.certificate_budget = certificate_budget
        self.on_budget = on_budget
        self.curvature_structure = curvature_structure
        self.removal_noise = removal_noise
        self.removal_epsilon = removal_epsilon
        self.removal_delta = removal_delta

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

        Raises
        ------
        CurvatureMemoryError
            Before anything is fitted, if the erasure state would not fit in
            ``memory_budget`` (see that parameter).
        """
        resolve_erasure_options(self, X)  # every combination, before the solver
        check_memory_budget(self, X, y)  # before anything changes
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
            try:
                if self.removal_noise is not None:
                    self._fit_perturbed(X, y, sample_weight)
                self._fit_erasure_state(X, y, sample_weight)
            finally:
                self.__dict__.pop("_removal_residual", None)
        return self

    def _fit_perturbed(self, X, y, sample_weight):
        """Replace the fitted parameters by the minimiser of the perturbed objective.

        ``J_b(θ) = C Σ w_i ℓ_i + ½ λ ‖Pθ‖² + bᵀθ`` with ``b ~ N(0, σ² I)``,
        minimised by L-BFGS from scikit-learn's solution. ``b`` is a local of
        this method: it is never stored (see ``removal_noise``). What is kept is
        ``‖∇J_b‖`` at the published parameters, carried by the certificate.
        """
        maths = self._erasure_maths()
        C, strength, penalized = self._objective_scaling()
        n_classes = self.classes_.shape[0]
        weight_sums = np.bincount(y, weights=sample_weight, minlength=n_classes)
        class_weight = np.asarray(
            self._class_weights(weight_sums, np.ones(n_classes, dtype=bool)),
            dtype=np.float64,
        )
        weights = np.asarray(sample_weight, dtype=np.float64) * class_weight[y]
        penalty = strength * np.asarray(penalized, dtype=np.float64)
        budget = gradient_budget(
            self.removal_noise, self.removal_epsilon, self.removal_delta
        )
        b = draw_perturbation(maths, self.removal_noise, self.random_state)
        theta, _, _ = perturbed_minimiser(
            maths,
            X,
            y,
            weights,
            self._get_flat_params(),
            C,
            penalty,
            b,
            # ‖g‖ ≤ √P ‖g‖_∞: a millionth of the guarantee's budget at most, and
            # near the rounding of the data term's gradient (~ C Σ w).
            gtol=min(
                1e-6 * budget / np.sqrt(maths.n_params),
                1e-12 * max(C * float(weights.sum()), 1.0),
            ),
            max_iter=self.max_iter,
        )
        theta = theta.astype(self.coef_.dtype)
        _, gradient = perturbed_objective(maths, X, y, weights, theta, C, penalty, b)
        del b
        self.__dict__.update(self._flat_params_attributes(theta))
        self._removal_residual = float(np.linalg.norm(gradient))
        if not self._removal_residual <= 0.01 * budget:
            warnings.warn(
                "the perturbed objective was not minimised to the accuracy "
                f"certified removal needs: its gradient is {self._removal_residual:.3g}"
                f", against a budget of {budget:.3g} for all requests together "
                "(requests will not be certified once it is used up). Increase "
                "max_iter, or use a smaller removal_noise or C.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _fit_residual(self, residual):
        carried = self.__dict__.get("_removal_residual")
        if carried is None:
            return residual, 0.0
        # The unperturbed gradient here is −b up to the solver's residual: it
        # must not be stored. Zeros, and ‖∇J_b‖ carried by the certificate.
        return np.zeros_like(residual), carried

    def _removal_guarantee(self, state, certificate):
        noise = state.curvature_params.get("removal_noise")
        if noise is None:
            return None
        epsilon, delta = float(self.removal_epsilon), float(self.removal_delta)
        budget = gradient_budget(noise, epsilon, delta)
        bound = (
            None
            if certificate is None
            else certificate.get("cumulative_gradient_bound")
        )
        holds = bound is not None and bound <= budget
        reason = None
        if certificate is None:
            reason = (
                "this model keeps no data-free certificate (class_weight='balanced')"
            )
        elif bound is None:
            reason = certificate.get("note") or "the request could not be certified"
        elif not holds:
            reason = (
                f"the certified gradient bound {bound:.3g} exceeds {budget:.3g}, "
                "what the noise covers (σ·ε/√(2 log(1.5/δ)))"
            )
        return {
            "epsilon": epsilon,
            "delta": delta,
            "noise": float(noise),
            "gradient_budget": budget,
            "gradient_bound": bound,
            "holds": bool(holds),
            "reason": reason,
        }

    def _penalty_and_l1_ratio(self):
        """The penalty ``fit`` applies, as scikit-learn resolves it, and its L1 share.

        Returns ``(penalty, r)`` with ``penalty`` in ``{"l2", "l1", "elasticnet",
        None}`` and the objective ``C Σ w_i ℓ_i + ½(1 − r)‖θ_P‖² + r‖θ_P‖₁``.
        """
        if self.penalty == "deprecated":
            if self.C == np.inf:
                return None, 0.0
            ratio = 0.0 if self.l1_ratio is None else float(self.l1_ratio)
            if ratio == 0:
                return "l2", 0.0
            return ("l1" if ratio == 1 else "elasticnet"), ratio
        if self.penalty is None:
            return None, 0.0
        ratio = {"l1": 1.0, "l2": 0.0}.get(self.penalty)
        return self.penalty, float(self.l1_ratio) if ratio is None else ratio

    # -- hooks of ErasableMixin ------------------------------------------------------
    def _erasure_maths(self):
        return self._erasure_maths_for(self.n_features_in_, self.classes_.shape[0])

    def _erasure_maths_for(self, n_features, n_classes):
        return LogisticMaths(
            n_features=n_features,
            n_classes=n_classes,
            fit_intercept=self.fit_intercept,
            intercept_scaling=self.intercept_scaling
            if self._intercept_penalized()
            else 1.0,
        )

    def _curvature_candidates(
        self, maths, dtype, n_samples, n_classes, X=None, approximations=False
    ):
        """The structures ``fit`` may build, as memory estimates, in the order
        ``curvature_structure`` prefers them (``check_memory_budget`` checks the
        first that fits; ``_fit_erasure_state`` builds the same one).

        ``approximations``: under ``curvature_structure="auto"``, append the
        approximations it falls back to when none of the exact structures fits
        (:func:`~sklearn_ssse._curvature_structures.approximate_candidates`)."""

        def blocks_of(block_size):
            return block_estimate(
                self,
                maths,
                dtype,
                n_samples=n_samples,
                n_classes=n_classes,
                block_size=block_size,
            )

        blocks = blocks_of(self.block_size)
        if X is None:
            return [blocks]
        # Mini-batch Fisher estimates and an L1 active set keep the blocks.
        try:
            l1 = self._l1_share()
        except (TypeError, ValueError):  # invalid; the solver's validation says so
            l1 = 0.0
        cg = self.fisher_batch_size == 1 and l1 == 0
        candidates = structure_candidates(
            self.curvature_structure, maths, X, dtype, n_samples, blocks, cg=cg
        )
        if approximations and self.curvature_structure == "auto" and l1 == 0:
            # Other block sizes only for the default block_size=None (one chosen
            # by hand is kept, and refused if it does not fit); an L1 active set
            # builds the blocks of block_size on its own maths.
            largest = maths.n_params if self.block_size is None else 0
            candidates += approximate_candidates(
                maths, X, dtype, n_samples, candidates, blocks_of, cg, largest
            )
        return candidates

    def _check_remaining_rows(self, n_remaining):
        # (A pure L1 penalty has no L2 part but is a penalty all the same.)
        penalty, _ = self._penalty_and_l1_ratio()
        maths = self._erasure_maths()
        # A softmax is unchanged by adding one vector to every class's row.
        free = maths.n_params - (maths.width if maths.n_outputs > 1 else 0)
        if penalty is None and n_remaining <= free:
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
        penalty, ratio = self._penalty_and_l1_ratio()
        if penalty is None:
            return 1.0, 0.0, penalized
        # The elastic-net's L2 part; the L1 part enters through the hooks below.
        return float(self.C), 1.0 - ratio, penalized

    def _l1_share(self):
        penalty, ratio = self._penalty_and_l1_ratio()
        return 0.0 if penalty is None else ratio

    def _movable_mask(self, theta):
        # Penalised coordinates at zero are frozen (no curvature there).
        if self._l1_share() == 0:
            return None
        _, _, penalized = self._objective_scaling()
        return ~((penalized > 0) & (theta == 0))

    def _penalty_subgradient(self, theta):
        ratio = self._l1_share()
        if ratio == 0:
            return None
        _, _, penalized = self._objective_scaling()
        return ratio * np.sign(theta) * penalized

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

    def _certificate_supported(self):
        # Balanced class weights change every remaining row's weight with each
        # request: the certified objective would not be the remaining one. An
        # L1/elastic-net objective is not smooth: the bounds do not apply.
        return self.class_weight != "balanced" and self._l1_share() == 0

    def _strong_convexity(self):
        C, strength, penalized = self._objective_scaling()
        return float(strength) if np.all(penalized > 0) else 0.0

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
            "removal_noise",
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
        return _mask_forgotten_classes(scores, counts)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # As LogisticRegression: the array API with lbfgs (dense input). The
        # erasure state then lives on the data's device (see _array_api.py).
        # (Certified removal's perturbed solve is NumPy/SciPy only.) scikit-learn
        # 1.8's LogisticRegression has no array API support: neither has this.
        tags.array_api_support = (
            tags.array_api_support
            and self.solver == "lbfgs"
            and self.removal_noise is None
        )
        return tags


def _mask_forgotten_classes(scores, counts):
    """``scores``, ``-inf`` for classes with no rows left (binary: ``±inf``)."""
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


# The parameters of the erasure, shared by both estimators of this module.
_ERASURE_PARAMS = (
    "forget_scale",
    "curvature",
    "leave_out",
    "damping",
    "block_size",
    "fisher_batch_size",
)

# The CV parameters that the final model's objective depends on.
_OBJECTIVE_PARAMS = (
    "Cs",
    "l1_ratios",
    "penalty",
    "solver",
    "fit_intercept",
    "intercept_scaling",
    "class_weight",
    "dual",
    "refit",
)


class ErasableLogisticRegressionCV(PartialForgetRequestMixin, LogisticRegressionCV):
    """LogisticRegressionCV whose final model can forget training rows.

    A drop-in :class:`~sklearn.linear_model.LogisticRegressionCV`: every parameter,
    fitted attribute and prediction is the same (``fit`` gives the same ``C_``,
    ``l1_ratio_``, ``scores_``, ``coefs_paths_``, ``coef_`` bit for bit). ``fit``
    additionally stores the erasure state of the final model (the one refitted on
    all rows with the selected ``C_`` and ``l1_ratio_``) as
    :attr:`final_estimator_`, an :class:`ErasableLogisticRegression`;
    :meth:`partial_forget` erases rows from it in one closed-form step and copies
    its ``coef_`` and ``intercept_`` onto this object.

    **The selection is not redone.** Only the final model forgets. ``scores_``,
    ``coefs_paths_``, ``n_iter_``, ``C_`` and ``l1_ratio_`` still describe the
    cross-validation on the data *with* the forgotten rows, and the erased model
    approximates ``LogisticRegression(C=C_, l1_ratio=l1_ratio_)`` refitted on the
    remaining rows, not a new search. :attr:`selection_stale_` is True as soon as a
    row has been forgotten; call ``fit`` on the remaining data to redo the
    selection. The fold models in ``coefs_paths_`` were trained on the forgotten
    rows and would give them back by difference with the erased model: the first
    request deletes them (``coefs_paths_`` becomes ``None``). ``scores_`` (fold
    scores, aggregates) and the selected ``C_`` stay, as a trace listed in
    ``docs/privacy.md`` until the next ``fit``.

    Parameters
    ----------
    Cs, l1_ratios, fit_intercept, cv, dual, penalty, scoring, solver, tol, \
max_iter, class_weight, n_jobs, verbose, refit, intercept_scaling, random_state, \
use_legacy_attributes
        As in :class:`~sklearn.linear_model.LogisticRegressionCV`. With
        ``refit=False`` the coefficients are an average of the fold models, the
        optimum of no single objective: :meth:`partial_forget` refuses them.

    forget_scale, curvature, leave_out, damping, block_size, fisher_batch_size
        As in :class:`ErasableLogisticRegression`, for the final model.
        ``forget_scale`` and ``leave_out`` may be changed after ``fit``.

    Attributes
    ----------
    classes_, coef_, intercept_, Cs_, l1_ratios_, coefs_paths_, scores_, C_, \
l1_ratio_, n_iter_, n_features_in_, feature_names_in_
        As in :class:`~sklearn.linear_model.LogisticRegressionCV`; ``coef_`` and
        ``intercept_`` change with every :meth:`partial_forget`, ``coefs_paths_``
        becomes ``None`` at the first one, the others never change.

    final_estimator_ : ErasableLogisticRegression or None
        The final model with its erasure state (``curvature_inverse_``,
        ``class_counts_``, ...); None when ``refit=False``.

    n_forgotten_ : int
        Number of rows forgotten since ``fit``.

    class_counts_ : ndarray of shape (n_classes,) or None
        Training rows of each class not forgotten yet (None when ``refit=False``).

    selection_stale_ : bool
        Whether rows were forgotten since ``fit``: then ``scores_``, ``C_``,
        ``l1_ratio_`` and ``coefs_paths_`` describe data that included them.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegressionCV
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = ErasableLogisticRegressionCV(
    ...     Cs=4, l1_ratios=(0,), scoring="neg_log_loss", use_legacy_attributes=False,
    ...     curvature="hessian",
    ... ).fit(X, y)
    >>> clf.partial_forget(X[:5], y[:5]).n_forgotten_
    5
    >>> clf.selection_stale_
    True
    """

    _parameter_constraints: dict = {
        **LogisticRegressionCV._parameter_constraints,
        **{
            name: ErasableLogisticRegression._parameter_constraints[name]
            for name in _ERASURE_PARAMS
        },
    }

    def __init__(
        self,
        *,
        Cs=10,
        l1_ratios="warn",
        fit_intercept=True,
        cv=None,
        dual=False,
        penalty="deprecated",
        scoring=LOGISTIC_CV_SCORING_DEFAULT,  # 1.9: "warn"; 1.8: None
        solver="lbfgs",
        tol=1e-4,
        max_iter=100,
        class_weight=None,
        n_jobs=None,
        verbose=0,
        refit=True,
        intercept_scaling=1.0,
        random_state=None,
        use_legacy_attributes="warn",
        forget_scale=1.0,
        curvature="hessian",
        leave_out=True,
        damping=None,
        block_size=None,
        fisher_batch_size=1,
    ):
        super().__init__(
            Cs=Cs,
            l1_ratios=l1_ratios,
            fit_intercept=fit_intercept,
            cv=cv,
            dual=dual,
            penalty=penalty,
            scoring=scoring,
            solver=solver,
            tol=tol,
            max_iter=max_iter,
            class_weight=class_weight,
            n_jobs=n_jobs,
            verbose=verbose,
            refit=refit,
            intercept_scaling=intercept_scaling,
            random_state=random_state,
            use_legacy_attributes=use_legacy_attributes,
        )
        self.forget_scale = forget_scale
        self.curvature = curvature
        self.leave_out = leave_out
        self.damping = damping
        self.block_size = block_size
        self.fisher_batch_size = fisher_batch_size

    def fit(self, X, y, sample_weight=None, **params):
        """Fit exactly as LogisticRegressionCV, then store the final model's state.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training vectors.
        y : array-like of shape (n_samples,)
            Target labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights; ones when ``None``.
        **params : dict
            Passed to the splitter and the scorer, as in
            :meth:`LogisticRegressionCV.fit`.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        resolve_erasure_options(self, X)  # before the search runs
        super().fit(X, y, sample_weight=sample_weight, **params)
        self.n_forgotten_ = 0
        self.selection_stale_ = False
        self._fitted_search_params = {
            name: getattr(self, name) for name in _OBJECTIVE_PARAMS
        }
        if not self.refit:
            self.final_estimator_ = None
            self.class_counts_ = None
            return self
        X, y = validate_data(
            self,
            X,
            y,
            reset=False,
            accept_sparse="csr",
            dtype=np.float64,
            order="C",
            accept_large_sparse=self.solver not in ["liblinear", "sag", "saga"],
        )
        sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        final = self._final_model()
        final.classes_ = self.classes_
        final.coef_ = self.coef_
        final.intercept_ = self.intercept_
        final.n_iter_ = np.ravel(self.n_iter_)[:1]
        final.n_features_in_ = self.n_features_in_
        if hasattr(self, "feature_names_in_"):
            final.feature_names_in_ = self.feature_names_in_
        final._fit_erasure_state(X, np.searchsorted(self.classes_, y), sample_weight)
        self.final_estimator_ = final
        self.class_counts_ = final.class_counts_
        return self

    def _final_model(self):
        """The ErasableLogisticRegression whose objective the final refit solved."""
        C = float(np.ravel(self.C_)[0])
        if self.penalty == "deprecated":
            ratios = None if isinstance(self.l1_ratios, str) else self.l1_ratios
            if ratios is None or np.all(np.asarray(ratios) == 0):
                penalty = "l2"
            elif np.all(np.asarray(ratios) == 1):
                penalty = "l1"
            else:
                penalty = "elasticnet"
        else:
            penalty = self.penalty
        ratio = {"l2": 0.0, "l1": 1.0}.get(penalty)
        if ratio is None:
            ratio = float(np.ravel(self.l1_ratio_)[0])
        return ErasableLogisticRegression(
            C=C,
            l1_ratio=ratio,
            dual=self.dual,
            tol=self.tol,
            fit_intercept=self.fit_intercept,
            intercept_scaling=self.intercept_scaling,
            class_weight=self.class_weight,
            random_state=self.random_state,
            solver=self.solver,
            max_iter=self.max_iter,
            **{name: getattr(self, name) for name in _ERASURE_PARAMS},
        )

    def partial_forget(self, X, y, sample_weight=None, *, ledger=None, request_id=None):
        """Erase training rows from the final model in one closed-form step.

        See :meth:`ErasableLogisticRegression.partial_forget`. ``C_``,
        ``l1_ratio_`` and ``scores_`` are left as they are: they still reflect
        the forgotten rows (:attr:`selection_stale_`). ``coefs_paths_`` (the
        fold models, trained on the forgotten rows) is deleted: set to ``None``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            The rows to forget, as given to ``fit``.
        y : array-like of shape (n_rows,)
            Their labels, as given to ``fit``.
        sample_weight : array-like of shape (n_rows,), default=None
            The sample weights these rows had in ``fit`` (ones when ``None``).
        ledger : ErasureLedger, default=None
            As in :meth:`ErasableLogisticRegression.partial_forget`.
        request_id : str, default=None
            As in :meth:`ErasableLogisticRegression.partial_forget`.

        Returns
        -------
        self : object
            The updated estimator.

        Raises
        ------
        ValueError
            As :meth:`ErasableLogisticRegression.partial_forget`; also when the
            model was fitted with ``refit=False`` or a parameter of the search was
            changed since ``fit``. The model is left unchanged.
        """
        check_is_fitted(self, "final_estimator_")
        if self.final_estimator_ is None:
            raise ValueError(
                "this model was fitted with refit=False: its coefficients average "
                "the fold models and optimise no single objective, so no erasure "
                "step applies; fit with refit=True to forget rows"
            )
        for name, used in self._fitted_search_params.items():
            if not _same(getattr(self, name), used):
                raise ValueError(
                    f"{name}={getattr(self, name)!r} differs from {used!r}, the value "
                    "the model was fitted with; call fit again to change it"
                )
        final = self.final_estimator_
        with final._erasure_lock():
            final.set_params(**{name: getattr(self, name) for name in _ERASURE_PARAMS})
            final.partial_forget(
                X, y, sample_weight=sample_weight, ledger=ledger, request_id=request_id
            )
            # One update of __dict__: a reader sees the model before or after.
            forgotten = final.n_forgotten_ > 0
            self.__dict__.update(
                coef_=final.coef_,
                intercept_=final.intercept_,
                class_counts_=final.class_counts_,
                n_forgotten_=final.n_forgotten_,
                selection_stale_=forgotten,
                # the fold models were trained on the forgotten rows
                coefs_paths_=None if forgotten else self.coefs_paths_,
            )
        return self

    def decision_function(self, X):
        """Confidence scores; ``-inf`` for classes whose rows were all forgotten.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The data matrix for which we want to get the confidence scores.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            As :meth:`LogisticRegressionCV.decision_function`.
        """
        view = object.__new__(type(self))  # one snapshot of the published model
        view.__dict__ = self.__dict__.copy()
        scores = super(ErasableLogisticRegressionCV, view).decision_function(X)
        return _mask_forgotten_classes(scores, view.__dict__.get("class_counts_"))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = False
        return tags


def _same(a, b):
    """Whether two parameter values are equal (arrays compared by value)."""
    try:
        return bool(np.all(a == b)) and np.shape(a) == np.shape(b)
    except (TypeError, ValueError):
        return a is b
