"""Saving erasable models safely, and sharing one model file between processes.

:func:`save` writes a model (and its ledger) to a temporary file in the target's
folder, fsyncs it and renames it over the target, so that a crash at any moment
leaves the old file or the new one, never a broken one. :class:`ErasureStore` lets
several worker processes share one model file without losing an erasure: saves are
compare-and-swaps under a file lock, checked against the lineage of the states
(``ErasureState.state_id`` / ``parent_id``), and ``store.forget`` journals each
request (:class:`~sklearn_ssse.journal.Journal`) before acknowledging it. The
pattern, what a crash leaves at each point and the rules for backups are in
``docs/deployment.md``.

The files are pickles (protocol 5) behind a small JSON header: **loading one runs
code chosen by whoever wrote it**; load only files you wrote yourself.
"""

import contextlib
import glob
import hashlib
import json
import os
import pickle
import stat
import struct
import tempfile
import warnings

from filelock import FileLock

from ._state import utc_now
from .exceptions import InvalidRequestError, StaleStateError

__all__ = [
    "CorruptModelFileError",
    "ErasureStore",
    "load",
    "load_ledger",
    "read_header",
    "save",
]

# File layout: MAGIC | header length (8 bytes, big endian) | header (JSON, UTF-8)
# | payload (pickle protocol 5 of {"model": ..., "ledger": ...}) | trailer: length
# of header + payload (8 bytes) and their SHA-256 (32 bytes).
MAGIC = b"SSSE-MODEL v1\n"
FILE_FORMAT = 1
_LENGTH = struct.Struct(">Q")
_TRAILER_SIZE = _LENGTH.size + 32
_MAX_HEADER = 1 << 24
_TEMP_SUFFIX = ".ssse-tmp"


class CorruptModelFileError(ValueError):
    """The file is not a complete sklearn-ssse model file (or was damaged)."""


# -- lineage -------------------------------------------------------------------------
def _erasable_parts(model):
    """The erasable estimators a model's lineage is made of, as a list.

    One for an erasable estimator, one per output for a multi-output wrapper (its
    first output's records stand for the request ids); a pipeline, a search or a
    CV model gives its final estimator's. Raises ``TypeError`` for anything else.
    """
    if getattr(model, "__dict__", {}).get("erasure_state_") is not None:
        return [model]
    if hasattr(model, "steps"):  # Pipeline
        return _erasable_parts(model.steps[-1][1])
    if hasattr(model, "best_estimator_"):  # a search
        return _erasable_parts(model.best_estimator_)
    if getattr(model, "final_estimator_", None) is not None:  # the CV model
        return _erasable_parts(model.final_estimator_)
    estimators = getattr(model, "estimators_", None)
    if estimators and all(
        vars(e).get("erasure_state_") is not None for e in estimators
    ):
        return list(estimators)
    raise TypeError(
        f"{type(model).__name__} is not a fitted erasable model (no erasure_state_)"
    )


def _erasure_states(model):
    """The erasure states of :func:`_erasable_parts`, as a tuple."""
    return tuple(vars(part)["erasure_state_"] for part in _erasable_parts(model))


def _set_erasure_key(model, key):
    """``set_erasure_key(key)`` on every erasable estimator inside ``model``."""
    for part in _erasable_parts(model):
        part.set_erasure_key(key)


def _fit_digest(states):
    """The states' lineage roots: the random ``root_id`` of the state each
    one's ``fit`` published (equal for states of one fit, whatever requests
    followed; it says nothing about the data)."""
    return "|".join(str(getattr(state, "root_id", None)) for state in states)


def _lineage(states):
    """The header's description of the states: ids, parents, request counts."""
    return [
        {
            "state_id": s.state_id,
            "parent_id": s.parent_id,
            "n_requests": len(s.records),
            "fit": _fit_digest((s,)),
        }
        for s in states
    ]


def _descends_from(state, saved):
    """Whether ``state`` is ``saved`` (a lineage entry) or was computed from it.

    A request publishes a state whose record carries its ``state_id``; so the
    saved state, if it had ``k`` requests, is an ancestor exactly when the
    ``k``-th record of ``state`` carries its id. A saved state with no request
    is a fit state: an ancestor when it is ``state``'s lineage root (its
    ``root_id``).
    """
    target, k = saved["state_id"], saved["n_requests"]
    records = state.records
    if state.state_id == target:
        return True
    if len(records) <= k:
        return False  # behind the file, or beside it
    if k:
        return getattr(records[k - 1], "state_id", None) == target
    return target in (state.parent_id, getattr(state, "root_id", None))


def _check_descends(states, lineage, path):
    lineage = lineage or []
    if len(lineage) == len(states) and all(
        _descends_from(s, saved) for s, saved in zip(states, lineage)
    ):
        return
    saved = lineage[0] if lineage else {"state_id": None, "n_requests": "?"}
    raise StaleStateError(
        f"{path} moved on since this model was loaded from it: it holds state "
        f"{saved['state_id']} ({saved['n_requests']} request(s)), which this "
        f"model's state {states[0].state_id} ({len(states[0].records)} request(s)) "
        "was not computed from. Saving would undo another worker's erasure, so "
        "nothing was written. Reload the newest state (store.load() or "
        "store.transaction()), apply the request to it again and save."
    )


def _request_ids(states):
    return {r.request_id for r in states[0].records if r.request_id is not None}


def _record_of(states, request_id):
    for record in reversed(states[0].records):
        if record.request_id == request_id:
            return record
    return None


# -- files ---------------------------------------------------------------------------
def fsync_directory(directory):
    """Make a rename in ``directory`` durable (a no-op where folders cannot be
    opened, as on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _HashingWriter:
    """A file wrapper that hashes and counts what goes through it."""

    def __init__(self, raw):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.n_bytes = 0

    def write(self, data):
        view = memoryview(data)
        self.hash.update(view)
        self.n_bytes += view.nbytes
        return self.raw.write(view)


def _write_atomic(path, header, obj):
    """Write ``header`` and the pickle of ``obj`` to ``path`` atomically."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    header_bytes = json.dumps(header, sort_keys=True).encode()
    fd, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=_TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as raw:
            with contextlib.suppress(FileNotFoundError):  # keep the old file's mode
                os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
            raw.write(MAGIC)
            raw.write(_LENGTH.pack(len(header_bytes)))
            writer = _HashingWriter(raw)
            writer.write(header_bytes)
            pickle.dump(obj, writer, protocol=5)
            raw.write(_LENGTH.pack(writer.n_bytes))
            raw.write(writer.hash.digest())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(directory)


def _remove_temporaries(path):
    """Remove the temporary files of saves that crashed (they hold a state, and
    so the rows erased since: issue 22). Call it only under the store's lock."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = os.path.join(
        glob.escape(directory), f".{glob.escape(os.path.basename(path))}.*"
    )
    for leftover in glob.glob(pattern + _TEMP_SUFFIX):
        with contextlib.suppress(OSError):
            os.unlink(leftover)


def _read_header(f, path):
    if f.read(len(MAGIC)) != MAGIC:
        raise CorruptModelFileError(f"{path} is not an sklearn-ssse model file")
    raw = f.read(_LENGTH.size)
    (length,) = _LENGTH.unpack(raw) if len(raw) == _LENGTH.size else (-1,)
    if not 0 < length <= _MAX_HEADER:
        raise CorruptModelFileError(f"{path}: damaged header")
    header_bytes = f.read(length)
    try:
        return json.loads(header_bytes), header_bytes
    except ValueError:
        raise CorruptModelFileError(f"{path}: damaged header") from None


def read_header(path):
    """The header of a model file, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    header : dict
        ``format``, ``library_version``, ``saved_at`` (UTC), ``estimator``,
        ``ledger`` (whether a ledger is saved with the model) and ``lineage``: one
        dict per erasure state (one, or one per output of a multi-output model)
        with its ``state_id``, ``parent_id``, ``n_requests`` and ``fit`` (the
        lineage's random root id); ``None`` for a model that is not erasable.
    """
    with open(path, "rb") as f:
        return _read_header(f, os.fspath(path))[0]


def _load_payload(path):
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        header, header_bytes = _read_header(f, path)
        body_start = len(MAGIC) + _LENGTH.size
        body_end = size - _TRAILER_SIZE
        if body_end < body_start + len(header_bytes):
            raise CorruptModelFileError(f"{path} is truncated")
        f.seek(body_end)
        (length,) = _LENGTH.unpack(f.read(_LENGTH.size))
        digest = f.read(32)
        if length != body_end - body_start:
            raise CorruptModelFileError(f"{path} is truncated or damaged")
        f.seek(body_start)
        h = hashlib.sha256()
        left = length
        while left:
            chunk = f.read(min(left, 1 << 22))
            if not chunk:
                raise CorruptModelFileError(f"{path} is truncated")
            h.update(chunk)
            left -= len(chunk)
        if h.digest() != digest:
            raise CorruptModelFileError(f"{path} is damaged (checksum mismatch)")
        f.seek(body_start + len(header_bytes))
        return header, pickle.load(f)


def _header(model, ledger):
    from . import __version__

    try:
        lineage = _lineage(_erasure_states(model))
    except TypeError:
        lineage = None
    cls = type(model)
    return {
        "format": FILE_FORMAT,
        "library_version": __version__,
        "saved_at": utc_now(),
        "estimator": f"{cls.__module__}.{cls.__qualname__}",
        "ledger": ledger is not None,
        "lineage": lineage,
    }


def save(model, path, *, ledger=None):
    """Save a model (and its ledger) atomically: old file or new one, never half.

    The model is pickled (protocol 5) into a temporary file in the folder of
    ``path``, behind a JSON header (:func:`read_header`) and followed by a
    checksum; the file is flushed and fsynced, renamed over ``path`` and the
    folder is fsynced. A crash at any moment leaves either the previous file or
    the new one, each loadable. No backup of the previous file is kept: an earlier
    saved state holds the rows erased since (see ``docs/deployment.md``), so
    backups and earlier versions of an erasable model's file must be destroyed.

    Parameters
    ----------
    model : estimator
        Any picklable estimator; an erasable one gets its lineage in the header.
    path : str or path-like
        Where to save.
    ledger : ErasureLedger, default=None
        Saved in the same file. Its key is never saved: set it again after
        :func:`load_ledger`.

    Returns
    -------
    header : dict
        The header written (:func:`read_header`).

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.persistence import load, read_header, save
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> model = ErasableLogisticRegression().fit(X, y).partial_forget(X[:1], y[:1])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ssse")
    >>> header = save(model, path)
    >>> read_header(path)["lineage"][0]["n_requests"]
    1
    >>> load(path).erasure_state_.state_id == model.erasure_state_.state_id
    True
    """
    header = _header(model, ledger)
    _write_atomic(path, header, {"model": model, "ledger": ledger})
    return header


def load(path):
    """Load a model saved by :func:`save`, after checking the file is complete.

    .. warning:: The file is a pickle: loading it runs code chosen by whoever
       wrote it. Load only files you wrote yourself.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    model : estimator

    Raises
    ------
    CorruptModelFileError
        The file is truncated, damaged or not a model file.
    """
    return _load_payload(path)[1]["model"]


def load_ledger(path, *, key=None):
    """Load the ledger saved with a model by :func:`save`.

    The same warning as :func:`load` applies (a pickle runs code when loaded).

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save` with ``ledger=``.
    key : bytes, default=None
        The ledger's secret key (never saved); without it the ledger cannot
        check or record rows until :meth:`ErasureLedger.set_key` is called.

    Returns
    -------
    ledger : ErasureLedger or None
        ``None`` when the file holds no ledger.
    """
    ledger = _load_payload(path)[1]["ledger"]
    if ledger is not None and key is not None:
        ledger.set_key(key)
    return ledger


# -- the store -----------------------------------------------------------------------
class ErasureStore:
    """One model file shared by several worker processes, no erasure lost.

    Every write is a compare-and-swap under a file lock (``path + ".lock"``,
    :class:`filelock.FileLock`): a model is saved only if the file still holds its
    state or an ancestor of it (by the lineage ``state_id`` / ``parent_id`` and
    the ``state_id`` in each request record); otherwise :class:`StaleStateError`
    tells the worker to reload and retry. The safe pattern for N workers is
    :meth:`transaction` (lock, load the newest state, apply, save atomically) or
    :meth:`forget`, which also journals the request before acknowledging it.

    For a multi-output model, the lineage is that of every output, and the first
    output's records stand for the request ids.

    Files are pickles: loading one runs code chosen by its writer. Keep the store
    where only the erasure service can write.

    Parameters
    ----------
    path : str or path-like
        The model file (written by :func:`save` or :meth:`save`).
    journal : Journal, default=None
        Where :meth:`forget` logs accepted requests (:mod:`sklearn_ssse.journal`).
    ledger_key : bytes, default=None
        The key of the ledger saved in the file, if any (keys are never saved).
    erasure_key : bytes, default=None
        The key that seals the model's fit point in the file
        (``set_erasure_key``; never saved): set on every model the store loads
        and saves, so that ``linearization="fit"`` carries on across workers and
        restarts. Without it a loaded model re-bases its requests on the
        published parameters (``SealedPointWarning``). Keep it in a secret
        store, with the ledger's.
    timeout : float, default=-1
        Seconds to wait for the lock (``-1``: forever); past it
        :class:`filelock.Timeout` is raised.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.persistence import ErasureStore
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> store = ErasureStore(os.path.join(tempfile.mkdtemp(), "model.ssse"))
    >>> store.save(ErasableLogisticRegression().fit(X, y))
    >>> with store.transaction() as model:  # in any worker process
    ...     _ = model.partial_forget(X[:2], y[:2], request_id="ticket-1")
    >>> [r.request_id for r in store.load().request_records_]
    ['ticket-1']
    """

    def __init__(
        self, path, *, journal=None, ledger_key=None, erasure_key=None, timeout=-1
    ):
        self.path = os.fspath(path)
        self.journal = journal
        self.ledger_key = ledger_key
        self.erasure_key = erasure_key
        self.timeout = timeout
        self._lock = FileLock(self.path + ".lock", timeout=timeout)

    def __repr__(self):
        return f"ErasureStore({self.path!r})"

    # -- reading -----------------------------------------------------------------
    def header(self):
        """The file's header (:func:`read_header`): its lineage, without
        unpickling."""
        return read_header(self.path)

    def _read(self):
        payload = _load_payload(self.path)[1]
        ledger = payload["ledger"]
        if ledger is not None and self.ledger_key is not None:
            ledger.set_key(self.ledger_key)
        model = payload["model"]
        if self.erasure_key is not None:
            _set_erasure_key(model, self.erasure_key)
        return model, ledger

    def load(self):
        """The newest saved model (a pickle: load only a store you wrote)."""
        return self._read()[0]

    def load_ledger(self):
        """The ledger saved with the newest model (its key set from
        ``ledger_key``), or ``None``."""
        return self._read()[1]

    # -- writing -----------------------------------------------------------------
    def save(self, model, *, ledger=None, overwrite=False):
        """Save ``model`` if the file did not move on since it was loaded.

        Parameters
        ----------
        model : fitted erasable estimator
            A model loaded from this store (then changed by requests), or the
            first model when the file does not exist yet.
        ledger : ErasureLedger, default=None
            Saved in the same file. Required when the file holds a ledger.
        overwrite : bool, default=False
            Skip the lineage check (a refitted model replacing the file). The
            journal of the old lineage then no longer applies.

        Raises
        ------
        StaleStateError
            The file holds a state this model was not computed from (another
            worker saved meanwhile). Nothing was written.
        """
        with self._lock:
            self._save_locked(model, ledger, overwrite=overwrite)

    def _save_locked(self, model, ledger, *, overwrite=False):
        if self.erasure_key is not None:  # the fit point saved under this key
            _set_erasure_key(model, self.erasure_key)
        states = _erasure_states(model)
        if os.path.exists(self.path) and not overwrite:
            saved = read_header(self.path)
            if saved.get("ledger") and ledger is None:
                raise ValueError(
                    f"{self.path} keeps a ledger with the model: pass ledger= (the "
                    "one loaded with it, updated by the requests) to save"
                )
            _check_descends(states, saved.get("lineage"), self.path)
        _remove_temporaries(self.path)
        save(model, self.path, ledger=ledger)

    @contextlib.contextmanager
    def transaction(self, *, with_ledger=False):
        """Lock the file, load the newest state, yield it, save it on success.

        Use ``with store.transaction() as model: model.partial_forget(...)``.
        The lock is held throughout, so no other worker publishes meanwhile. On
        a clean exit the model is saved atomically if its state changed (with
        the ledger when ``with_ledger``); if the block raises, nothing is saved.
        Requests applied this way are not journaled: :meth:`forget` does both.

        Parameters
        ----------
        with_ledger : bool, default=False
            Yield ``(model, ledger)`` (the ledger saved in the file, or
            ``None``) and save both.

        Yields
        ------
        model : estimator, or (model, ledger) with ``with_ledger``
        """
        with self._lock:
            model, ledger = self._read()
            before = _lineage(_erasure_states(model))
            yield (model, ledger) if with_ledger else model
            if with_ledger or _lineage(_erasure_states(model)) != before:
                self._save_locked(model, ledger)

    def forget(self, X, y, *, request_id, sample_weight=None):
        """Apply one erasure request to the newest state, journal it, save it.

        In order: lock; load the newest state (and its ledger); validate and
        compute the request in memory (``partial_forget``, with the ledger);
        append the request to the journal (fsynced); save atomically; release.
        When this returns, the erasure is durable: acknowledge it. A request
        whose id was already applied (a retry after a crash or a timeout) is not
        applied again: its record is returned.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            The rows to forget, as given to ``fit``.
        y : array-like of shape (n_rows,) or (n_rows, n_outputs)
            Their labels.
        request_id : str
            The caller's identifier of the request (a ticket number; no personal
            data).
        sample_weight : array-like of shape (n_rows,), default=None
            Their weights in ``fit``.

        Returns
        -------
        record : RequestRecord or None
            The request's record (the first output's for a multi-output model);
            ``None`` for an empty request (nothing is journaled or saved).

        Raises
        ------
        InvalidRequestError, ErasureNumericalError, IncompatibleStateError
            As ``partial_forget``; nothing is journaled or saved. Also raised
            when ``request_id`` was already applied with other rows.
        """
        if not isinstance(request_id, str) or not request_id:
            raise InvalidRequestError(
                f"request_id must be a non-empty string, got {request_id!r}"
            )
        with self._lock:
            # 1. The newest state.
            model, ledger = self._read()
            states = _erasure_states(model)
            done = _record_of(states, request_id)
            if done is not None:
                self._check_retry(request_id, X, y, sample_weight)
                return done
            # 2. Validate and compute in memory (the file is untouched).
            n_before = len(states[0].records)
            model.partial_forget(
                X, y, sample_weight, ledger=ledger, request_id=request_id
            )
            new_states = _erasure_states(model)
            if len(new_states[0].records) == n_before:
                return None  # empty request
            record = new_states[0].records[-1]
            # 3. Journal it (fsynced) before it can be acknowledged.
            if self.journal is not None:
                self.journal.record(
                    X,
                    y,
                    sample_weight,
                    request_id=request_id,
                    state_id=new_states[0].state_id,
                    parent_id=states[0].state_id,
                    fit=_fit_digest(states),
                )
            # 4. Publish atomically.
            try:
                self._save_locked(model, ledger)
            except BaseException:
                if self.journal is not None:
                    with contextlib.suppress(Exception):
                        self.journal.abort(request_id)
                raise
            return record

    def _check_retry(self, request_id, X, y, sample_weight):
        if self.journal is None:
            return
        entry = self.journal.find(request_id)
        if entry is not None and not self.journal.matches(entry, X, y, sample_weight):
            raise InvalidRequestError(
                f"request {request_id!r} was already applied, with other rows: a "
                "request id names one request"
            )

    def replay(self, journal=None, rows_for=None):
        """Bring the saved state up to date with the journal, after a crash.

        Re-applies, in journal order, every accepted request whose id is not in
        the saved model's records (a crash between the journal append and the
        save), getting its rows from ``rows_for`` and checking them against the
        journal's fingerprints, then saves once, atomically. Idempotent: a
        request already in the records is skipped, so replaying twice is
        replaying once. Requests the journal marks aborted (their save failed
        and the caller was told) are skipped; so are entries of another lineage
        (a model refitted since), with a warning.

        Parameters
        ----------
        journal : Journal, default=None
            The journal (the store's own when ``None``).
        rows_for : callable
            ``rows_for(request_id) -> (X, y, sample_weight)``: the rows of a
            request, as first given (``sample_weight`` may be ``None``).

        Returns
        -------
        applied : list of str
            The request ids applied, in order (empty when up to date).

        Raises
        ------
        InvalidRequestError
            The rows ``rows_for`` gives do not match the journal's fingerprints
            (or the model refuses them). Nothing is saved.
        """
        journal = self.journal if journal is None else journal
        if journal is None or rows_for is None:
            raise TypeError("replay needs a journal and rows_for")
        with self._lock:
            model, ledger = self._read()
            states = _erasure_states(model)
            known = {states[0].state_id, states[0].parent_id}
            known.update(r.state_id for r in states[0].records)
            fit = _fit_digest(states)
            applied, foreign = [], []
            for entry in journal.pending(_request_ids(states)):
                if entry.get("parent_id") not in known and entry.get("fit") != fit:
                    foreign.append(entry["request_id"])
                    continue
                X, y, sample_weight = rows_for(entry["request_id"])
                if not journal.matches(entry, X, y, sample_weight):
                    raise InvalidRequestError(
                        f"the rows given for request {entry['request_id']!r} do not "
                        "match the journal's fingerprints; nothing was saved"
                    )
                model.partial_forget(
                    X,
                    y,
                    sample_weight,
                    ledger=ledger,
                    request_id=entry["request_id"],
                )
                known.add(_erasure_states(model)[0].state_id)
                applied.append(entry["request_id"])
            if applied:
                self._save_locked(model, ledger)
        if foreign:
            warnings.warn(
                f"{len(foreign)} journal entries belong to another lineage (a model "
                "refitted since?) and were not replayed; start a new journal after "
                "a refit",
                UserWarning,
                stacklevel=2,
            )
        return applied
