"""An append-only, fsynced journal of accepted erasure requests.

One JSON line per accepted request, written (and fsynced) before the request is
acknowledged: the caller's request id, the UTC time, the row count, the ids of the
state it was computed from and of the state it produced, and keyed fingerprints of
its rows (:func:`sklearn_ssse.ledger.row_fingerprints`), never their values.
:meth:`sklearn_ssse.persistence.ErasureStore.replay` uses it to bring a saved state
up to date after a crash; it is also the audit trail. ``docs/deployment.md`` says
what a crash leaves at each step.
"""

import json
import os

from filelock import FileLock

from ._state import utc_now
from .ledger import row_fingerprints
from .persistence import fsync_directory

__all__ = ["Journal", "JournalCorruptError"]

JOURNAL_VERSION = 1


class JournalCorruptError(ValueError):
    """A line of the journal before its last one is not a journal entry."""


def _end_of_last_line(fd, size):
    """Offset just past the last newline of the file (0 if none)."""
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        os.lseek(fd, start, os.SEEK_SET)
        chunk = os.read(fd, end - start)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


class Journal:
    """An append-only log of accepted erasure requests, as JSON lines.

    Each :meth:`record` appends one line and fsyncs the file before returning,
    under a file lock (``path + ".lock"``), so that entries of concurrent
    writers never interleave. A line torn by a crash in the middle of an append
    is ignored on reading and cut off before the next append.

    Privacy: an entry holds no row values and no labels, only keyed BLAKE2b
    fingerprints (pseudo-random without the key), sorted, a row count, a time
    and random state ids. With the key, a fingerprint confirms a candidate row:
    keep the key in a secret store, as the ledger's (it may be the same key).

    Parameters
    ----------
    path : str or path-like
        The journal file (created on the first append, mode 0600).
    key : bytes
        Secret key of the fingerprints, 16 to 64 bytes. It is never written.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_ssse.journal import Journal
    >>> journal = Journal(os.path.join(tempfile.mkdtemp(), "j.jsonl"), key=b"k" * 32)
    >>> X, y = np.array([[0.5, 1.5]]), np.array([1])
    >>> entry = journal.record(X, y, request_id="ticket-7", state_id="ab12")
    >>> [e["request_id"] for e in journal.entries()], entry["n_rows"]
    (['ticket-7'], 1)
    >>> journal.matches(entry, X, y, None)
    True
    """

    def __init__(self, path, *, key):
        if not isinstance(key, bytes | bytearray) or not 16 <= len(key) <= 64:
            raise ValueError("key must be bytes of length 16 to 64")
        self.path = os.fspath(path)
        self._key = bytes(key)
        self._lock = FileLock(self.path + ".lock")

    def __repr__(self):
        return f"Journal({self.path!r})"

    def __getstate__(self):
        raise TypeError("a Journal holds a secret key and is not pickled")

    # -- writing -----------------------------------------------------------------
    def fingerprints(self, X, y, sample_weight=None):
        """The rows' keyed fingerprints, hex-encoded and sorted (as entries
        hold them)."""
        fps = row_fingerprints(X, y, sample_weight, key=self._key)
        return sorted(f.hex() for f in fps.tolist())

    def record(
        self,
        X,
        y,
        sample_weight=None,
        *,
        request_id,
        state_id=None,
        parent_id=None,
        fit=None,
    ):
        """Append (and fsync) the entry of an accepted request.

        Parameters
        ----------
        X, y, sample_weight
            The request's rows, labels and weights (only their fingerprints are
            written).
        request_id : str
            The caller's identifier of the request.
        state_id, parent_id : str, default=None
            The state the request produced and the one it was computed from.
        fit : str, default=None
            The lineage's root id (set by the store).

        Returns
        -------
        entry : dict
            The entry written.
        """
        fingerprints = self.fingerprints(X, y, sample_weight)
        entry = {
            "v": JOURNAL_VERSION,
            "type": "forget",
            "request_id": str(request_id),
            "time": utc_now(),
            "n_rows": len(fingerprints),
            "state_id": state_id,
            "parent_id": parent_id,
            "fit": fit,
            "fingerprints": fingerprints,
        }
        self._append(entry)
        return entry

    def abort(self, request_id):
        """Append a mark that the request journaled last under ``request_id``
        was not published (its save failed and the caller was told): replay
        skips it."""
        entry = {
            "v": JOURNAL_VERSION,
            "type": "abort",
            "request_id": str(request_id),
            "time": utc_now(),
        }
        self._append(entry)
        return entry

    def _append(self, entry):
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        with self._lock:
            created = not os.path.exists(self.path)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size:
                    os.lseek(fd, size - 1, os.SEEK_SET)
                    if os.read(fd, 1) != b"\n":  # a torn line: cut it
                        os.ftruncate(fd, _end_of_last_line(fd, size))
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_directory(os.path.dirname(os.path.abspath(self.path)))

    # -- reading -----------------------------------------------------------------
    def entries(self):
        """Every complete entry, oldest first (a torn last line is ignored).

        Raises
        ------
        JournalCorruptError
            A line before the last one is not a journal entry.
        """
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        out = []
        for number, line in enumerate(lines[:-1], 1):  # lines[-1]: torn or empty
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise JournalCorruptError(
                    f"{self.path}: line {number} is not a journal entry"
                ) from None
            if not isinstance(entry, dict) or "request_id" not in entry:
                raise JournalCorruptError(
                    f"{self.path}: line {number} is not a journal entry"
                )
            out.append(entry)
        return out

    def pending(self, applied=()):
        """The accepted entries to replay: the first entry of each request id,
        neither in ``applied`` nor aborted, oldest first."""
        applied = set(applied)
        firsts, aborted = {}, set()
        for entry in self.entries():
            rid = entry["request_id"]
            if entry.get("type") == "abort":
                aborted.add(rid)
                firsts.pop(rid, None)  # the attempt it aborts
            elif entry.get("type") == "forget" and rid not in firsts:
                firsts[rid] = entry
                aborted.discard(rid)
        return [
            e for rid, e in firsts.items() if rid not in applied and rid not in aborted
        ]

    def find(self, request_id):
        """The last accepted (not aborted) entry of ``request_id``, or ``None``."""
        found = None
        for entry in self.entries():
            if entry["request_id"] != request_id:
                continue
            found = entry if entry.get("type") == "forget" else None
        return found

    def matches(self, entry, X, y, sample_weight=None):
        """Whether ``(X, y, sample_weight)`` are the rows of ``entry`` (as a
        multiset of fingerprints)."""
        return self.fingerprints(X, y, sample_weight) == entry["fingerprints"]
