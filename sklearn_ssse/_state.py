"""The erasure state: everything a fitted model needs to take requests, as one object.

An erasable estimator keeps one :class:`ErasureState` in its fitted attribute
``erasure_state_``. The state is immutable: a request builds a new one (sharing the
arrays it does not change) and publishes it together with the new coefficients in a
single update of the estimator's ``__dict__``, under the estimator's lock
(:mod:`sklearn_ssse.base`). A reader therefore sees either the state before a
request or the state after it, never a mix, and a request can never be lost to a
concurrent one.

The state carries its format version (:data:`STATE_FORMAT_VERSION`) and the library
version that built it, and the record of every request applied to it, in a
:class:`RequestLog` that a request extends in O(1) amortised time.
"""

import dataclasses
import datetime
import itertools
import secrets
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["STATE_FORMAT_VERSION", "ErasureState", "RequestLog", "RequestRecord"]

# Bump when the meaning or layout of the state changes: a state of another format is
# refused by ``partial_forget`` (the model still predicts).
STATE_FORMAT_VERSION = 2


def _library_version():
    from . import __version__

    return __version__


@dataclass(frozen=True)
class RequestRecord:
    """What one ``partial_forget`` request did, without any row contents.

    Attributes
    ----------
    index : int
        1 for the first request after ``fit``, then 2, 3, ...
    time : str
        When the request was published (UTC, ISO 8601).
    n_rows : int
        Number of rows forgotten.
    rows_per_class : dict
        Empty in records of this version: a per-class count of a small request
        names its rows' labels (``docs/privacy.md``). Records of older pickles
        may hold one.
    forget_scale : float
        The step scale ε used.
    curvature : str
        The curvature kind (``"hessian"``, ``"fisher"``, ...).
    leave_out : bool
        Whether the step used the curvature without the forgotten rows.
    step_norm : float
        Euclidean norm of the parameter change.
    library_version : str
        The sklearn-ssse version that computed the request.
    certificate : dict or None
        The request's certificate (see :mod:`sklearn_ssse.certificate`), when
        computed: the certified bounds on ``‖∇J_rem‖`` (this request's share and
        cumulative) and on the distance to the exact retrain.
    n_params : int or None
        Number of parameters of the model.
    n_remaining : int or None
        Training rows left after the request.
    budget : float or None
        The ``certificate_budget`` the request was checked against.
    within_budget : bool or None
        Whether the cumulative certified bound was within it.
    request_id : str or None
        The caller's identifier of the request (a ticket number), when given.
    state_id : str or None
        :attr:`ErasureState.state_id` of the state the request published.
    """

    index: int
    time: str
    n_rows: int
    rows_per_class: dict
    forget_scale: float
    curvature: str
    leave_out: bool
    step_norm: float
    library_version: str = field(default_factory=_library_version)
    certificate: dict | None = None
    n_params: int | None = None
    n_remaining: int | None = None
    budget: float | None = None
    within_budget: bool | None = None
    request_id: str | None = None
    state_id: str | None = None

    def to_dict(self):
        """The record as a JSON-ready dict (plain Python types, no NaN)."""
        out = dataclasses.asdict(self)
        for key in ("step_norm", "forget_scale", "budget"):
            out[key] = _finite_or_none(out[key])
        if out["certificate"] is not None:
            out["certificate"] = {
                k: _finite_or_none(v) if isinstance(v, float) else v
                for k, v in out["certificate"].items()
            }
        return out


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


# Guards the check "is this log the tip of its shared list?" and the append that
# follows: two models sharing one list (shallow copies, with different per-model
# locks) can never both append at the same tip.
_APPEND_LOCK = threading.Lock()


class RequestLog(Sequence):
    """The request records of a state: a read-only sequence of :class:`RequestRecord`.

    It reads like the tuple it stands for (``len``, indexing, slices as tuples,
    iteration) and compares equal to a tuple or another log holding the same
    records. :meth:`appended` gives the log of the next state in O(1) amortised
    time: the logs of successive states share one list, each seeing only the
    first ``len(log)`` entries of it, and entries are only ever appended to it,
    so a log never changes once built.

    Parameters
    ----------
    records : iterable of RequestRecord, default=()
        The records, oldest first.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> model = ErasableLogisticRegression().fit(X, y)
    >>> model.request_records_ == ()
    True
    >>> before = model.request_records_
    >>> records = model.partial_forget(X[:2], y[:2]).request_records_
    >>> len(records), records[-1].index, records[-1].n_rows, len(before)
    (1, 1, 2, 0)
    >>> records == tuple(records)
    True
    """

    __slots__ = ("_shared", "_length")

    def __init__(self, records=()):
        self._shared = list(records)
        self._length = len(self._shared)

    @classmethod
    def _view(cls, shared, length):
        log = object.__new__(cls)
        log._shared = shared
        log._length = length
        return log

    def appended(self, record):
        """The log with ``record`` added at the end; ``self`` is left as it is.

        Appends to the shared list in place when this log is its tip (the usual
        case: O(1) amortised); otherwise (a copy of the model, or a request that
        failed after building its state, already appended past it) copies this
        log's records into a new list first.
        """
        with _APPEND_LOCK:
            if len(self._shared) == self._length:
                self._shared.append(record)
                return self._view(self._shared, self._length + 1)
        # The first ``_length`` entries of the shared list never change.
        shared = self._shared[: self._length]
        shared.append(record)
        return self._view(shared, self._length + 1)

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            positions = range(*index.indices(self._length))
            return tuple(map(self._shared.__getitem__, positions))
        position = range(self._length)[index]  # IndexError/TypeError as a tuple's
        return self._shared[position]

    def __iter__(self):
        return itertools.islice(self._shared, self._length)

    def __reversed__(self):
        return map(self._shared.__getitem__, reversed(range(self._length)))

    def __eq__(self, other):
        if isinstance(other, RequestLog):
            if other._shared is self._shared:
                return other._length == self._length
        elif not isinstance(other, tuple):
            return NotImplemented
        return len(other) == self._length and all(a == b for a, b in zip(self, other))

    def __hash__(self):
        return hash(tuple(self))

    def __repr__(self):
        if not self._length:
            return "RequestLog([])"
        last = self[-1]
        return (
            f"RequestLog({self._length} record(s); last: request {last.index}, "
            f"{last.n_rows} row(s), {last.time})"
        )

    def __copy__(self):
        return self  # immutable

    # Pickles, deep copies and skops files hold this log's records only, as a
    # tuple; loading gives a log of its own.
    def __getstate__(self):
        return {"records": tuple(self)}

    def __setstate__(self, state):
        self._shared = list(state["records"])
        self._length = len(self._shared)


def append_record(records, record):
    """``records`` (a :class:`RequestLog`, or the tuple of an older pickle) with
    ``record`` added at the end, as a :class:`RequestLog`."""
    if not isinstance(records, RequestLog):
        records = RequestLog(records)
    return records.appended(record)


def _same_values(a, b):
    """Whether two parameter vectors hold the same values (any namespace)."""
    try:
        return a.shape == b.shape and bool((a == b).all())
    except Exception:
        return False


def check_request_id(request_id, records):
    """Raise unless ``request_id`` is ``None`` or a string no record holds yet."""
    from .exceptions import InvalidRequestError

    if request_id is None:
        return
    if not isinstance(request_id, str) or not request_id:
        raise InvalidRequestError(
            f"request_id must be a non-empty string or None, got {request_id!r}"
        )
    for record in reversed(records):
        if getattr(record, "request_id", None) == request_id:
            raise InvalidRequestError(
                f"request {request_id!r} was already applied (record "
                f"{record.index}, {record.time}): a request id is applied once"
            )


def new_state_id():
    """A fresh random identifier of a published state (it says nothing about
    the data: 128 random bits, as hex)."""
    return uuid.uuid4().hex


def utc_now():
    """The current time as an ISO 8601 string in UTC."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True, eq=False)
class ErasureState:
    """The stored state of an erasable model between requests.

    Never modify one in place: :meth:`replace` returns a new state.

    Attributes
    ----------
    curvature : CurvatureInverse
        Inverse of the damped curvature ``M`` over the rows not forgotten yet.
    point : ndarray of shape (n_params,) or None
        The fitted parameters at which ``M`` was built (the linearisation point
        of ``linearization="fit"``). In memory only: a pickle, skops file or
        ``persistence.save`` holds it sealed under ``seal_key``
        (``sealed_point``), and a state loaded without the key has ``None``
        here until :meth:`~sklearn_ssse.base.ErasableMixin.set_erasure_key`
        opens it, or the next request re-bases it on the published parameters
        (``docs/privacy.md``).
    prior : ndarray of shape (n_params,)
        The damping λ·P plus the floor, as added to ``M``'s diagonal.
    data_diagonal : ndarray of shape (n_params,) or None
        Diagonal of the data term ``C Σ_i w_i K_i`` of ``M`` over the rows not
        forgotten yet (``None`` for estimated curvatures): a request that would
        make it negative cannot consist of training rows.
    residual_gradient : ndarray of shape (n_params,)
        Gradient of the objective at the published parameters as far as it is
        known: the solver's residual at ``fit``, zero after a request.
    class_gradient_sums : ndarray of shape (n_classes, n_params) or None
        Per-class gradient sums at the fit (``class_weight="balanced"`` only).
    fit_class_weight : ndarray of shape (n_classes,)
        The class weights used in ``fit``.
    class_counts : ndarray of shape (n_classes,)
        Training rows (of positive weight) of each class not forgotten yet.
    class_weight_sums : ndarray of shape (n_classes,)
        Sum of the sample weights of those rows.
    row_norm_bound : float
        An upper bound on the Euclidean norm of every training row (a power of
        two, so that it reveals no row's exact norm): rows beyond it cannot be
        training rows.
    curvature_params : dict
        The parameters the stored curvature depends on, at ``fit``.
    coefficients : ndarray of shape (n_params,)
        The parameters published with this state (flat); a request refuses a
        model whose fitted parameters no longer equal them.
    n_forgotten : int
        Rows forgotten since ``fit``.
    records : RequestLog
        One record per request since ``fit`` (a tuple in states of older
        pickles: :func:`append_record` accepts both).
    certificate_state : CertificateState or None
        What the data-free certificate needs between requests, its running bound
        included (:mod:`sklearn_ssse.certificate`); ``None`` where the model keeps
        no certificate.
    format_version : int
        :data:`STATE_FORMAT_VERSION` of the library that built the state.
    library_version : str
        The sklearn-ssse version that built the state at ``fit``.
    max_multiplicity : int
        An upper bound on how often one training row (values and label)
        repeats in the training set (an aggregate, from ``fit``): a request may
        hold identical rows up to it. 1 in states of older pickles.
    max_sample_weight : float
        A power of two at or above every training row's sample weight (an
        aggregate): heavier request rows cannot be training rows. ``inf`` in
        states of older pickles.
    state_id : str
        A random identifier of this state, new at ``fit`` and at every request
        (:func:`new_state_id`); ``None`` in states of older pickles.
    movable_index : ndarray of int or None
        The coordinates the step may move (an L1 active set, fixed at ``fit``);
        ``None``: all.
    sealed_point : dict or None
        ``point`` sealed under the key (:mod:`sklearn_ssse._sealed`), in a state
        loaded from a file; ``None`` in memory.
    seal_key : bytes or None
        The key that seals ``point`` when the state is saved: random at ``fit``
        unless set by ``set_erasure_key``. Never pickled.
    root_id : str or None
        ``state_id`` of the state ``fit`` published, carried by every state
        computed from it: the lineage's name.
    parent_id : str or None
        ``state_id`` of the state this one was computed from (``None`` after
        ``fit``). Together they give a saved model its lineage: a store refuses
        to save a state over a file whose state is not its parent
        (:mod:`sklearn_ssse.persistence`).
    """

    curvature: object
    point: np.ndarray
    prior: np.ndarray
    data_diagonal: np.ndarray | None
    residual_gradient: np.ndarray
    class_gradient_sums: np.ndarray | None
    fit_class_weight: np.ndarray
    class_counts: np.ndarray
    class_weight_sums: np.ndarray
    row_norm_bound: float
    curvature_params: dict
    coefficients: np.ndarray
    n_forgotten: int = 0
    records: RequestLog = field(default_factory=RequestLog)
    certificate_state: object = None
    format_version: int = STATE_FORMAT_VERSION
    library_version: str = field(default_factory=_library_version)
    # Plain defaults (class attributes), so that states of older pickles read them.
    max_multiplicity: int = 1
    max_sample_weight: float = float("inf")
    state_id: str | None = None
    parent_id: str | None = None
    root_id: str | None = None
    movable_index: np.ndarray | None = None
    sealed_point: dict | None = None
    seal_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.state_id is None:
            object.__setattr__(self, "state_id", new_state_id())
        if self.root_id is None and self.parent_id is None:
            object.__setattr__(self, "root_id", self.state_id)

    @property
    def version(self):
        """Number of requests applied since ``fit`` (0 right after it)."""
        return len(self.records)

    def replace(self, **changes):
        """A new state with some fields changed; ``self`` is left as it is.

        The new state keeps ``state_id`` unless it is among the changes: a
        change of representation (``compact_erasure_state``) is the same state;
        a request gives its new state a new ``state_id`` and this one's as
        ``parent_id``.
        """
        return dataclasses.replace(self, **changes)

    # -- persistence: the fit point leaves the process only sealed -------------
    def __getstate__(self):
        state = self.__dict__.copy()
        key = state.pop("seal_key", None)
        point = state.get("point")
        if point is not None and not _same_values(point, state["coefficients"]):
            from ._sealed import seal

            # Sealed under the state's key, or a fresh one nobody keeps.
            state["sealed_point"] = seal(point, key or secrets.token_bytes(32))
            state["point"] = None
        return state

    def __setstate__(self, state):
        state.setdefault("seal_key", None)
        self.__dict__.update(state)

    def __copy__(self):
        return self  # immutable

    def __deepcopy__(self, memo):
        # A copy in memory keeps the point and its key (a pickle does not).
        import copy

        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    def opened(self, key):
        """This state with its sealed point opened by ``key`` (``ValueError``
        for another key), the key kept for the next save."""
        from ._sealed import unseal

        point = unseal(self.sealed_point, key)
        return dataclasses.replace(
            self, point=point.copy(), sealed_point=None, seal_key=key
        )

    def rebased(self):
        """This state linearised at its published parameters (its sealed point,
        if any, dropped): what a request does when the key is not set."""
        return dataclasses.replace(
            self, point=self.coefficients.copy(), sealed_point=None
        )
