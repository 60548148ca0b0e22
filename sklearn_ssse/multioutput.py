"""ErasableMultiOutputClassifier: one erasable classifier per output.

The paper's multi-attribute setting (CelebA: 40 binary attributes, one weight vector
per attribute): a :class:`~sklearn.multioutput.MultiOutputClassifier` whose
sub-estimators can forget rows, so that ``partial_forget(X, Y)`` forwards each column
of ``Y`` to its output's sub-estimator, atomically across outputs.
"""

import contextlib
import copy
import warnings
from numbers import Integral

import numpy as np
from joblib import cpu_count, effective_n_jobs
from sklearn import get_config
from sklearn.base import _fit_context, clone
from sklearn.multioutput import MultiOutputClassifier
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.metadata_routing import process_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from . import _array_api
from ._memory import check_outputs_memory_budget
from ._multioutput_batch import batched_forget, fold_outputs, stack_outputs
from .base import (
    CURVATURE_PARAMS,
    ErasableMixin,
    PartialForgetRequestMixin,
    erasure_lock,
)
from .exceptions import CostlyErasureWarning, SealedPointWarning

__all__ = ["ErasableMultiOutputClassifier"]


# Parameters of the sub-estimator that a request reads from ``estimator`` (they may
# change after ``fit``); those that shape the stored curvature are only checked.
_REQUEST_PARAMS = (
    "forget_scale",
    "leave_out",
    "linearization",
    "certificate_budget",
    "on_budget",
)


def _estimator_has(attr):
    """``available_if`` check: the fitted sub-estimators (or the template) have it."""

    def check(self):
        if hasattr(self, "estimators_"):
            return all(hasattr(est, attr) for est in self.estimators_)
        return hasattr(self.estimator, attr)

    return check


@contextlib.contextmanager
def _one_cost_warning(n_jobs):
    """Gather the outputs' :class:`CostlyErasureWarning` into one warning.

    Each output's ``fit`` warns on its own; forty outputs would give forty
    warnings. When the outputs are fitted one after another in this thread (the
    warnings machinery is not thread-safe), their warnings are recorded and one
    is issued for all, with the first output's estimate; other warnings pass
    through, once per text and place. Recorded warnings are issued even when a
    fit fails.
    """
    if effective_n_jobs(n_jobs) != 1:
        yield
        return
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CostlyErasureWarning)
            yield
    finally:  # issued even when a fit fails
        _issue_gathered(caught)


def _issue_gathered(caught):
    """Issue recorded warnings again: one :class:`CostlyErasureWarning` for all,
    the others once per text and place."""
    costly = [w for w in caught if issubclass(w.category, CostlyErasureWarning)]
    passed = set()  # each other warning once per text and place, as "default"
    for w in caught:
        key = (w.category, str(w.message), w.filename, w.lineno)
        if not issubclass(w.category, CostlyErasureWarning) and key not in passed:
            passed.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if costly:
        first = costly[0]
        message = str(first.message)
        if len(costly) > 1:
            message = (
                f"{len(costly)} outputs: {message} (the estimate of the first "
                "output; the others' are alike)"
            )
        warnings.warn_explicit(
            CostlyErasureWarning(message),
            CostlyErasureWarning,
            first.filename,
            first.lineno,
        )


def _needs_output_seeds(estimator):
    """Whether the outputs must draw independent randomness (certified removal)."""
    return getattr(estimator, "removal_noise", None) is not None and hasattr(
        estimator, "random_state"
    )


def _output_seeds(random_state, n_outputs):
    """One ``random_state`` per output, independent of each other.

    ``None`` stays ``None`` for every output (fresh entropy from the operating
    system at each draw). An int seeds :class:`numpy.random.SeedSequence`, whose
    spawned children give one 32-bit seed per output (reproducible). A
    ``RandomState`` draws the outputs' seeds (and advances).
    """
    if random_state is None:
        return [None] * n_outputs
    if isinstance(random_state, (Integral, np.integer)):
        children = np.random.SeedSequence(int(random_state)).spawn(n_outputs)
        return [int(c.generate_state(1)[0]) for c in children]  # 32-bit seeds
    rng = check_random_state(random_state)
    return [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=n_outputs)]


def _fit_output(template, seed, X, y, **fit_params):
    """Fit a clone of ``template`` with ``random_state=seed`` on one output."""
    return clone(template).set_params(random_state=seed).fit(X, y, **fit_params)


def _with_params(estimator, params):
    """A shallow copy of a fitted sub-estimator with some parameters changed.

    The fitted arrays are shared (never written to); the estimator itself is left
    untouched.
    """
    work = object.__new__(type(estimator))
    work.__dict__ = estimator.__dict__.copy()
    work.__dict__.pop("_erasure_lock", None)
    for name, value in params.items():
        setattr(work, name, value)
    return work


_PARAM_NAMES = {}


def _param_names(cls):
    """``cls``'s parameter names (cached: ``get_params`` inspects the signature)."""
    names = _PARAM_NAMES.get(cls)
    if names is None:
        names = _PARAM_NAMES[cls] = frozenset(cls._get_param_names())
    return names


class _OutputRequest:
    """The part of a ``partial_forget`` request that concerns one output.

    ``prepare`` (cheap, sequential) and ``compute`` (the expensive part, run in
    parallel; it returns the output's new sub-estimator) are separate, so that
    nothing is published before every output has been validated and computed: the
    request is atomic.
    """

    def __init__(self, index, estimator, template_params):
        self.index = index
        self.estimator = estimator
        own = _param_names(type(estimator))
        self.params = {k: v for k, v in template_params.items() if k in own}
        self.engine = isinstance(estimator, ErasableMixin)

    def _error(self, exc):
        # Same exception class as the sub-estimator's (InvalidRequestError, ...).
        try:
            error = type(exc)(f"output {self.index}: {exc}")
        except Exception:
            error = ValueError(f"output {self.index}: {exc}")
        return error

    def prepare(
        self,
        X,
        y,
        sample_weight,
        rows_checked=False,
        validate=True,
        request_id=None,
    ):
        if not self.engine:
            return
        work = _with_params(self.estimator, self.params)
        try:
            if validate and not get_config()["skip_parameter_validation"]:
                work._validate_params()
            self.request = work._prepare_forget(
                X, y, sample_weight, rows_checked=rows_checked, request_id=request_id
            )
        except ValueError as exc:
            raise self._error(exc) from exc
        self.work = work

    def compute(self, X, y, sample_weight):
        if not self.engine:
            # Any other estimator with ``partial_forget``: forget on a deep copy.
            work = copy.deepcopy(self.estimator)
            work.set_params(
                **{k: v for k, v in self.params.items() if k in _REQUEST_PARAMS}
            )
            kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
            try:
                work.partial_forget(X, y, **kwargs)
            except ValueError as exc:
                raise self._error(exc) from exc
            return work
        try:
            self.work._publish(self.work._compute_forget(self.request))
        except ValueError as exc:
            raise self._error(exc) from exc
        return self.work


class ErasableMultiOutputClassifier(PartialForgetRequestMixin, MultiOutputClassifier):
    """Multi-output classifier whose outputs can forget training rows.

    A :class:`~sklearn.multioutput.MultiOutputClassifier` (same ``fit``, ``predict``,
    ``predict_proba`` list-of-arrays convention, ``estimators_``, ``classes_``,
    ``n_jobs``) with :meth:`partial_forget`: the rows ``(X, Y)`` are forgotten by
    every output at once, each output's sub-estimator receiving its column of
    ``Y``. This is the paper's multi-attribute setting: one binary
    :class:`~sklearn_ssse.ErasableLogisticRegression` per attribute, each with its
    own curvature block.

    Parameters
    ----------
    estimator : estimator object
        The classifier cloned for each output; it must implement ``fit`` and
        ``predict``. :meth:`partial_forget` exists only if it implements
        ``partial_forget`` (e.g. :class:`~sklearn_ssse.ErasableLogisticRegression`);
        ``predict_proba`` only if it implements ``predict_proba``.

        ``forget_scale`` and ``leave_out`` are read from ``estimator`` at every
        request and copied to the sub-estimators, so
        ``set_params(estimator__forget_scale=0.5)`` takes effect without refitting
        (values set on ``estimators_[j]`` directly are overwritten). The parameters
        that shape the stored curvature (``curvature``, ``damping``, ``block_size``,
        ``fisher_batch_size``) need a new ``fit``: a request made after changing
        them raises ``ValueError``.

    n_jobs : int, default=None
        Number of jobs over outputs. ``fit`` builds the outputs' models, curvature
        included, in parallel (joblib's default backend, or the one of a
        :obj:`joblib.parallel_config` context: ``backend="dask"`` fits the
        outputs on a Dask cluster's workers); ``predict`` and
        :meth:`partial_forget` always run in local threads, which share the
        stored curvature instead of sending it to workers (a request on binary
        :class:`~sklearn_ssse.ErasableLogisticRegression` outputs runs all
        outputs at once instead, see Notes). ``None`` means 1 unless in a
        :obj:`joblib.parallel_config` context; ``-1`` means all processors.

    Attributes
    ----------
    classes_ : list of ndarray of shape (n_classes,)
        Class labels of each output. They do not change when an output's rows of
        one class are all forgotten (see Notes).

    estimators_ : list of ``n_outputs`` estimators
        The fitted sub-estimators. :meth:`partial_forget` replaces them with
        updated copies, all published at once (a reference to an old
        sub-estimator keeps the state before the request).

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``, if ``X`` had string feature names.

    n_forgotten_ : int
        Number of rows forgotten since ``fit``.

    See Also
    --------
    sklearn.multioutput.MultiOutputClassifier : The same model, without erasure.
    ErasableLogisticRegression : The sub-estimator of the paper's setting.

    Notes
    -----
    **Memory.** Each output stores the inverse of its own curvature, so with
    ``L`` outputs, ``m`` features and the default ``block_size=None`` the model
    holds ``L · (m + 1)² · itemsize`` bytes (``L · m² · itemsize`` with
    ``fit_intercept=False``); ``block_size=B`` lowers each output's share to the
    sum of its squared block sizes, at most ``(m + 1) · B``. The paper's
    40 attributes × 4 096 features take 40 · 4096² · 8 B = 5.4 GB in float64.
    The curvature is stored in the dtype of ``X`` at ``fit``: fitting on
    ``X.astype(np.float32)`` halves it (2.7 GB there), and the coefficients and
    later updates are then float32 too. A request holds the old and the updated
    blocks of every output until it succeeds (it is atomic), so its peak memory is
    twice the stored curvature (a one-row request on binary logistic outputs
    adds only low-rank factors, see below).

    **Requests batched over outputs.** When every output is a binary
    :class:`~sklearn_ssse.ErasableLogisticRegression` with one dense curvature
    block (the paper's setting), the outputs' inverses are kept in one
    ``(L, P, P)`` array and a request runs on all outputs at once: one product
    for every output's probabilities, one stacked product, Cholesky and solve
    for the step and the downdate, certificates computed together (the outputs
    share one certificate Gram). Each output's downdate is kept as low-rank
    factors until they reach an eighth of the block size (64 at the paper's
    512 features), then folded into a new stack, so a
    one-row request reads the stored curvature once and writes nothing of its
    size. ``estimators_[j]`` used alone behaves as before; a pickle or copy of
    the model holds the folded inverses. Other sub-estimators and settings take
    one request per output, with the same results (``docs/latency.md``).

    **An output left with one class.** When a request erases the last training
    rows of one class of an output (all the positives of a rare attribute), a
    refit could not train a logistic model on that output and would have to
    predict the remaining class for every row. The erased model does the same:
    that output's :meth:`predict` returns the remaining class, its
    ``predict_proba`` is one-hot on it (and ``decision_function`` of an
    :class:`~sklearn_ssse.ErasableLogisticRegression` sub-estimator is ``±inf``),
    and this holds through every later request. ``classes_`` keeps both classes.
    A later request whose ``Y`` holds the erased class in that output is refused,
    since those rows are already forgotten.

    **Atomicity.** :meth:`partial_forget` validates the request for every output,
    then computes every output's update, and only then installs them: if any
    output fails (bad labels, more rows than remain, a numerical failure), no
    output changes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_multilabel_classification
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.multioutput import ErasableMultiOutputClassifier
    >>> X, Y = make_multilabel_classification(
    ...     n_samples=200, n_features=20, n_classes=3, random_state=0
    ... )
    >>> clf = ErasableMultiOutputClassifier(
    ...     ErasableLogisticRegression(fit_intercept=False, curvature="hessian")
    ... ).fit(X, Y)
    >>> clf.partial_forget(X[:10], Y[:10]).n_forgotten_
    10
    >>> clf.predict(X[:2]).shape
    (2, 3)

    Memory is ``L · m² · itemsize`` without intercept (3 · 20² · 8 bytes here;
    blocks of 64 coordinates or more also hold, until they are folded, the
    low-rank factors of the last requests):

    >>> sum(est.curvature_inverse_.nbytes for est in clf.estimators_)
    9600
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"])],
        "n_jobs": [Integral, None],
    }

    def __init__(self, estimator, *, n_jobs=None):
        super().__init__(estimator, n_jobs=n_jobs)

    def fit(self, X, Y, sample_weight=None, **fit_params):
        """Fit one clone of ``estimator`` per column of ``Y``, in parallel.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data. Its dtype (float64 or float32) is the dtype of the
            stored curvature.

        Y : array-like of shape (n_samples, n_outputs)
            The targets, e.g. a binary indicator matrix.

        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights, passed to every output's ``fit``.

        **fit_params : dict of str -> object
            Other parameters passed to every output's ``fit``.

        Returns
        -------
        self : object
            The fitted estimator.

        Raises
        ------
        CurvatureMemoryError
            Before anything is fitted, if the outputs' erasure states together
            would not fit in the sub-estimator's ``memory_budget``.
        """
        check_outputs_memory_budget(self.estimator, X, Y, n_jobs=self.n_jobs)
        with erasure_lock(self), _one_cost_warning(self.n_jobs):
            if _needs_output_seeds(self.estimator):
                self._fit_with_output_seeds(X, Y, sample_weight, **fit_params)
            else:
                super().fit(X, Y, sample_weight=sample_weight, **fit_params)
            # Binary logistic outputs: their inverses in one stack, so that
            # requests run on all outputs at once (_multioutput_batch).
            stack_outputs(self.estimators_)
            self.n_forgotten_ = 0
        return self

    def _fit_with_output_seeds(self, X, Y, sample_weight, **fit_params):
        """``MultiOutputClassifier.fit`` with an independent seed per output.

        Certified removal (``removal_noise`` set) needs an independent ``b`` per
        output: clones of one estimator share its ``random_state``, and with one
        ``b`` for every output, anyone holding the remaining data could compute
        each output's ``b`` and tell an erased model (whose outputs then disagree)
        from a retrained one. The seeds are derived from ``random_state``
        (:func:`_output_seeds`), so a fixed seed still makes ``fit`` reproducible.
        """
        Y = validate_data(self, X="no_validation", y=Y, multi_output=True)
        check_classification_targets(Y)
        if Y.ndim == 1:
            raise ValueError(
                "y must have at least two dimensions for multi-output regression "
                "but has only one."
            )
        if sample_weight is not None:
            fit_params["sample_weight"] = sample_weight
        if get_config().get("enable_metadata_routing", False):
            fit_params = process_routing(self, "fit", **fit_params).estimator.fit
        seeds = _output_seeds(self.estimator.random_state, Y.shape[1])
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_output)(self.estimator, seed, X, Y[:, i], **fit_params)
            for i, seed in enumerate(seeds)
        )
        first = self.estimators_[0]
        self.n_features_in_ = first.n_features_in_
        if hasattr(first, "feature_names_in_"):
            self.feature_names_in_ = first.feature_names_in_

    def predict(self, X):
        """Predict every output.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.

        Returns
        -------
        Y : ndarray of shape (n_samples, n_outputs)
            The predicted class of each output. An output whose rows of one class
            were all forgotten predicts the remaining class.
        """
        check_is_fitted(self)
        # Threads, whatever the joblib context: the sub-estimators (and their
        # curvature) stay where they are instead of being copied to workers.
        Y = Parallel(n_jobs=self.n_jobs, require="sharedmem")(
            delayed(est.predict)(X) for est in self.estimators_
        )
        xp, _ = _array_api.namespace(*Y)
        if xp is not None:  # array API outputs: stacked on their device
            return xp.stack(Y, axis=1)
        return np.asarray(Y).T

    @available_if(_estimator_has("partial_forget"))
    @_fit_context(
        # the sub-estimators are not validated yet
        prefer_skip_nested_validation=False
    )
    def partial_forget(self, X, Y, sample_weight=None, *, ledger=None, request_id=None):
        """Erase training rows from every output at once.

        Each output's sub-estimator forgets the rows ``X`` with its column of
        ``Y`` (for :class:`~sklearn_ssse.ErasableLogisticRegression`: one SSSE
        step and the removal of the rows from that output's stored curvature).
        Binary :class:`~sklearn_ssse.ErasableLogisticRegression` outputs are
        processed all at once by batched linear algebra (see Notes); other
        outputs one by one, in parallel threads with ``n_jobs``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            The rows to forget, as given to ``fit``.

        Y : array-like of shape (n_rows, n_outputs)
            Their targets, as given to ``fit``.

        sample_weight : array-like of shape (n_rows,), default=None
            The sample weights these rows had in ``fit`` (ones when ``None``).

        ledger : ErasureLedger, default=None
            A :class:`~sklearn_ssse.ledger.ErasureLedger` of the training rows
            (recorded with ``Y``): rows never trained on and rows already
            forgotten are then refused exactly, and the rows are recorded in it.

        request_id : str, default=None
            The caller's identifier of the request, kept in every output's record;
            an id already applied is refused.

        Returns
        -------
        self : object
            The updated estimator.

        Raises
        ------
        ValueError
            On bad input (``Y`` not 2-D or with the wrong number of outputs, and
            everything a sub-estimator refuses: wrong number of features, NaN,
            labels not seen in ``fit``, more rows of a class than remain,
            mismatched lengths), naming the first output that refused. No output
            is changed.
        """
        check_is_fitted(self)
        Y = check_array(
            Y,
            accept_sparse=False,
            ensure_2d=False,
            dtype=None,
            ensure_min_samples=0,
            input_name="Y",
        )
        if Y.ndim != 2 or Y.shape[1] != len(self.estimators_):
            raise ValueError(
                f"Y must have shape (n_rows, {len(self.estimators_)}), one column per "
                f"output seen in fit; got shape {Y.shape}"
            )
        # get_params(deep=False) of the request's parameters, without inspecting
        # the signature at every request (the names are cached per class).
        template = {
            k: getattr(self.estimator, k)
            for k in _param_names(type(self.estimator))
            if k in _REQUEST_PARAMS or k in CURVATURE_PARAMS
        }
        with erasure_lock(self):
            self._open_outputs()
            requests = [
                _OutputRequest(j, est, template)
                for j, est in enumerate(self.estimators_)
            ]
            # 1. Validate every output (cheap) before any expensive work. The
            # request parameters come from the template; the others were
            # validated at fit, and those that shape the curvature are checked
            # against the stored state by every output: one validation suffices.
            claim = None
            if ledger is not None and Y.shape[0]:
                # checked and reserved in one step; released on any error
                claim = ledger.claim(ledger.fingerprints(X, Y, sample_weight))
            try:
                self._forget_outputs(
                    requests, template, X, Y, sample_weight, ledger, request_id
                )
            except BaseException:
                if claim is not None:
                    claim.release()
                raise
            if claim is not None:
                claim.commit()
        return self

    def _forget_outputs(
        self, requests, template, X, Y, sample_weight, ledger, request_id
    ):
        """Steps 1-3 of :meth:`partial_forget`, under its lock and ledger claim."""
        estimators = None
        if Y.shape[0]:
            # The common case (binary logistic outputs, one dense block each):
            # every output at once, by batched linear algebra. It returns
            # None where it does not apply or would refuse the request.
            estimators = batched_forget(
                self.estimators_,
                [_with_params(r.estimator, r.params) for r in requests],
                template,
                X,
                Y,
                sample_weight,
                rows_checked=ledger is not None,
                request_id=request_id,
            )
        if estimators is None:
            for j, request in enumerate(requests):
                request.prepare(
                    X,
                    Y[:, j],
                    sample_weight,
                    rows_checked=ledger is not None,
                    validate=j == 0,
                    request_id=request_id,
                )
        if Y.shape[0] == 0:
            return
        # 2. Compute every output's new sub-estimator; nothing published yet.
        # Each output's downdate is one pass over its stored inverse, memory-
        # bound: one thread per job, in sequence unless n_jobs asks for more.
        n_jobs = effective_n_jobs(self.n_jobs)
        if estimators is not None:
            pass
        elif n_jobs == 1:
            estimators = [
                request.compute(X, Y[:, j], sample_weight)
                for j, request in enumerate(requests)
            ]
        else:
            # Threads share the cores with BLAS's own: give each job its
            # share, or they oversubscribe the machine.
            limit = max(1, cpu_count() // n_jobs)
            with threadpool_limits(limits=limit, user_api="blas"):
                # Threads even under a Dask context: the stored state lives in
                # this process, and sending it to a worker (and the new one
                # back) costs more than the request's own O(d² k) work.
                estimators = Parallel(n_jobs=self.n_jobs, require="sharedmem")(
                    delayed(request.compute)(X, Y[:, j], sample_weight)
                    for j, request in enumerate(requests)
                )
        # 3. Publish them all at once: readers iterate over one list or the
        # other, never over a mix of old and new outputs.
        self.__dict__.update(
            estimators_=list(estimators),
            n_forgotten_=self.n_forgotten_ + Y.shape[0],
        )

    def _open_outputs(self):
        """Give every loaded output its fit point back (its key set) or re-base
        it, before the outputs are stacked; one warning for all of them."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SealedPointWarning)
            for est in self.estimators_:
                if isinstance(est, ErasableMixin) and "erasure_state_" in vars(est):
                    if est.erasure_state_.point is None:
                        est._erasure_state()
        for warning in caught[:1]:
            warnings.warn(warning.message, warning.category, stacklevel=3)

    def set_erasure_key(self, key):
        """Set the key that seals every output's fit point in saved copies
        (:meth:`ErasableLogisticRegression.set_erasure_key`).

        Parameters
        ----------
        key : bytes
            16 to 64 bytes.

        Returns
        -------
        self : object
        """
        for est in getattr(self, "estimators_", ()):
            if isinstance(est, ErasableMixin):
                est.set_erasure_key(key)
        return self

    def compact_erasure_state(self):
        """Fold the low-rank factors of recent requests into the stored inverses.

        The multi-output counterpart of
        :meth:`ErasableLogisticRegression.compact_erasure_state
        <sklearn_ssse.ErasableLogisticRegression.compact_erasure_state>`: after
        it, the live model holds no curvature removed by earlier requests (pickles
        and copies never do). One write of the stacked inverses.

        Returns
        -------
        self : object
            The estimator, its stored inverses folded (the same matrices).
        """
        check_is_fitted(self, "estimators_")
        with erasure_lock(self):
            fold_outputs(self.estimators_)
            for estimator in self.estimators_:
                if hasattr(estimator, "compact_erasure_state"):
                    estimator.compact_erasure_state()
        return self

    def __getstate__(self):
        # The outputs' lazy factors are folded first (under the lock): the pickle
        # or copy and the model then hold the same state, and no pickle holds
        # factors that carry the directions of recently forgotten rows.
        with erasure_lock(self):
            fold_outputs(self.__dict__.get("estimators_", ()))
            return super().__getstate__()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        sub = get_tags(self.estimator)
        # MultiOutputClassifier opts out of the common checks; we run them.
        tags._skip_test = False
        tags.input_tags.allow_nan = sub.input_tags.allow_nan
        tags.classifier_tags.multi_label = True
        tags.classifier_tags.poor_score = sub.classifier_tags.poor_score
        return tags
