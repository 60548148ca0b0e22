"""Recognising rows: keyed fingerprints, kept apart from the deployable model.

A request must name rows the model was trained on, each at most once. The model
itself cannot check that exactly without keeping something per training row, and a
model that keeps per-row information becomes an oracle for "was this row in the
training set?" wherever it is shipped. sklearn-ssse therefore keeps that knowledge
in a separate object, an :class:`ErasureLedger`, held by whoever handles requests:

- it stores one **keyed** fingerprint (BLAKE2b with a secret key) per training row
  that remains, with its multiplicity, and optionally keyed fingerprints of the ids
  that made the rows; an erased row's fingerprint is dropped with its last copy;
- the key is never pickled with the ledger;
- :meth:`~sklearn_ssse.base.ErasableMixin.partial_forget` accepts ``ledger=``, and
  :func:`forget_ids` erases by id from a pipeline with raw rows (DataFrames too).

Design, guarantees and the key-leak risk: ``docs/ledger.md``.
"""

import hashlib
import inspect
import numbers
import secrets
import threading

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array

from ._array_api import to_numpy
from .exceptions import InvalidRequestError

__all__ = ["ErasureLedger", "LedgerClaim", "forget_ids", "row_fingerprints"]

_DIGEST_SIZE = 16
_FP = f"S{_DIGEST_SIZE}"
# Domain separation: rows given as mixed (non-numeric) tables and ids hash under
# their own personalisation, so no encoding can collide with another.
_PERSON_MIXED = b"ssse-raw-row"
_PERSON_ID = b"ssse-id"

_NOT_HELD = (
    "{bad} of the {n} rows are not training rows this ledger holds: never training "
    "rows with these labels and weights, or already forgotten, or repeated more "
    "often than the training set held them, or claimed by a request in progress "
    "(the ledger keeps nothing of erased rows, so it cannot tell which; first such "
    "rows: {first})"
)


# -- canonical bytes ---------------------------------------------------------------
def _canonical_rows(X):
    """CSR float64 with sorted indices, no explicit zeros and one NaN bit pattern."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64, copy=True)
        X.sum_duplicates()
        X.eliminate_zeros()
        X.sort_indices()
    else:
        X = check_array(
            X, dtype=np.float64, ensure_min_samples=0, ensure_all_finite=False
        )
        X = sp.csr_matrix(X)
    X.data[np.isnan(X.data)] = np.nan
    return X


def _is_missing(value):
    if value is None:
        return True
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is optional
        return isinstance(value, float | np.floating) and value != value
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _is_number(value):
    return isinstance(value, numbers.Real | np.bool_) and not isinstance(
        value, np.datetime64 | np.timedelta64
    )


def _numeric_cells(values):
    """``(n,)`` object array of the 9-byte cells of a float64 column (NaN: missing)."""
    values = np.asarray(values, dtype=np.float64) + 0.0  # -0.0 is 0.0
    missing = np.isnan(values)
    cells = np.zeros((values.shape[0], 9), dtype=np.uint8)
    cells[:, 0] = np.where(missing, ord("n"), ord("f"))
    cells[:, 1:] = (
        np.where(missing, 0.0, values).astype("<f8").view(np.uint8).reshape(-1, 8)
    )
    cells = np.ascontiguousarray(cells).view(np.dtype((np.void, 9))).ravel()
    return cells.astype(object)


def _cell(value):
    """Canonical bytes of one value of a mixed column (self-delimiting)."""
    if _is_missing(value):
        return b"n" + bytes(8)
    if _is_number(value):
        return b"f" + np.float64(float(value) + 0.0).astype("<f8").tobytes()
    if isinstance(value, str):
        data, tag = value.encode("utf-8"), b"s"
    elif isinstance(value, bytes | bytearray):
        data, tag = bytes(value), b"b"
    else:
        data = f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"
        data, tag = data.encode("utf-8"), b"o"
    return tag + len(data).to_bytes(8, "little") + data


def _is_dataframe(X):
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _column_is_numeric(column):
    """Whether a pandas column holds only numbers (and missing values)."""
    import pandas as pd

    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories.dtype
        return pd.api.types.is_numeric_dtype(categories) or pd.api.types.is_bool_dtype(
            categories
        )
    return pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype)
        and not pd.api.types.is_complex_dtype(dtype)
    )


def _object_column_is_numeric(column):
    return all(_is_number(v) or _is_missing(v) for v in column)


def _as_numeric(X):
    """``X`` as a numeric matrix (sparse or ndarray), or ``None`` for mixed data."""
    if sp.issparse(X):
        return X
    if _is_dataframe(X):
        if not all(_column_is_numeric(X.iloc[:, j]) for j in range(X.shape[1])):
            return None
        values = X.to_numpy()
        if values.dtype.kind not in "biuf":
            values = X.to_numpy(dtype=np.float64, na_value=np.nan)
        return values
    X = np.asarray(X)
    if X.dtype.kind in "biuf":
        return X
    if X.dtype.kind == "O":
        X2 = X.reshape(X.shape[0], -1) if X.ndim else X
        if _object_column_is_numeric(X2.ravel()):
            flat = [np.nan if _is_missing(v) else float(v) for v in X2.ravel()]
            return np.asarray(flat, dtype=np.float64).reshape(X.shape)
    return None


def _mixed_row_bytes(X):
    """One canonical byte string per row of a table with non-numeric columns."""
    if _is_dataframe(X):
        columns = [X.iloc[:, j] for j in range(X.shape[1])]
        numeric = [_column_is_numeric(c) for c in columns]
        as_objects = X.to_numpy(dtype=object)
    else:
        as_objects = np.asarray(X, dtype=object)
        if as_objects.ndim != 2:
            raise InvalidRequestError(
                f"X must be 2-dimensional (rows by columns); got {as_objects.ndim} "
                "dimensions"
            )
        numeric = [_object_column_is_numeric(c) for c in as_objects.T]
    n, p = as_objects.shape
    rows = np.full(n, np.int64(p).tobytes(), dtype=object)
    for j in range(p):  # a loop over columns; each column is one array operation
        column = as_objects[:, j]
        if numeric[j]:
            values = [np.nan if _is_missing(v) else float(v) for v in column]
            cells = _numeric_cells(np.asarray(values, dtype=np.float64))
        else:
            cells = np.frompyfunc(_cell, 1, 1)(column)
        rows = rows + cells
    return rows


def _label_bytes(y):
    y = np.asarray(y, dtype=object)
    if y.ndim == 1:
        y = y[:, None]
    return [
        "\x1f".join(
            repr(v.item() if isinstance(v, np.generic) else v) for v in row
        ).encode()
        for row in y
    ]


def _canonical_weights(sample_weight, n):
    # Weights are compared at float32 precision: a model fitted on float32 data
    # holds them so, and the fingerprint must not depend on the model's dtype.
    if sample_weight is None:
        return np.ones(n)
    weights = np.asarray(to_numpy(sample_weight), dtype=np.float64)
    if weights.ndim == 0:
        weights = np.full(n, float(weights))
    return weights.astype(np.float32).astype(np.float64)


def _check_lengths(n, labels, weights):
    if len(labels) != n or weights.shape != (n,):
        raise InvalidRequestError(
            f"X, y and sample_weight must have the same number of rows; got {n}, "
            f"{len(labels)} and {weights.shape[0] if weights.ndim else 1}"
        )


def row_fingerprints(X, y, sample_weight=None, *, key=None):
    """One fingerprint per row of ``(X, y, sample_weight)``.

    Numeric rows (dense or sparse, a numeric DataFrame) get the same fingerprint
    exactly when their non-zero values (as float64), their labels and their
    weights (at float32 precision) are equal. Rows of a table with non-numeric
    columns (a DataFrame with strings, categoricals and NaNs, or an object array)
    are fingerprinted value by value, column by column: numbers as float64, one
    canonical missing value (``None``, ``NaN``, ``pd.NA``), strings as UTF-8, so a
    DataFrame and the same rows as an object array agree. With ``key`` the
    fingerprint is keyed BLAKE2b (a pseudo-random function of the row): without
    the key it says nothing about the row.

    Parameters
    ----------
    X : {array-like, sparse matrix, DataFrame} of shape (n_rows, n_features)
        The rows, exactly as given at training (floats rounded otherwise do not
        match).
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Their labels.
    sample_weight : array-like of shape (n_rows,), default=None
        Their weights (ones when ``None``).
    key : bytes, default=None
        The secret key (at most 64 bytes); ``None`` for unkeyed fingerprints.

    Returns
    -------
    fingerprints : ndarray of shape (n_rows,), dtype ``S16``

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ssse.ledger import row_fingerprints
    >>> rows = np.array([["a", 1.0], ["a", 1.0], ["b", np.nan]], dtype=object)
    >>> fps = row_fingerprints(rows, [0, 0, 1], key=b"k" * 32)
    >>> bool(fps[0] == fps[1]), bool(fps[0] == fps[2])
    (True, False)
    """
    # Hashing is host-side by nature: array API inputs (GPU tensors...) are
    # copied to NumPy here, and only here.
    X, y = to_numpy(X), to_numpy(y)
    options = {"digest_size": _DIGEST_SIZE}
    if key is not None:
        options["key"] = key
    labels = _label_bytes(y)
    numeric = _as_numeric(X)
    if numeric is None:
        rows = _mixed_row_bytes(X)
        n = rows.shape[0]
        weights = _canonical_weights(sample_weight, n)
        _check_lengths(n, labels, weights)
        out = np.empty(n, dtype=_FP)
        options["person"] = _PERSON_MIXED
        for i in range(n):  # one digest per row, by nature
            h = hashlib.blake2b(rows[i], **options)
            h.update(weights[i].tobytes())
            h.update(labels[i])
            out[i] = h.digest()
        return out
    X = _canonical_rows(numeric)
    n = X.shape[0]
    weights = _canonical_weights(sample_weight, n)
    _check_lengths(n, labels, weights)
    indices = X.indices.astype(np.int64)
    ptr = X.indptr
    out = np.empty(n, dtype=_FP)
    # Hashing is per row by nature (one digest each); the numerics stay vectorised.
    for i in range(n):
        h = hashlib.blake2b(**options)
        lo, hi = ptr[i], ptr[i + 1]
        h.update(np.int64(hi - lo).tobytes())
        h.update(indices[lo:hi].tobytes())
        h.update(X.data[lo:hi].tobytes())
        h.update(weights[i].tobytes())
        h.update(labels[i])
        out[i] = h.digest()
    return out


def _id_bytes(value):
    if _is_missing(value):
        raise InvalidRequestError("ids must not be missing (None or NaN)")
    if isinstance(value, str):
        return b"s" + value.encode("utf-8")
    if isinstance(value, bytes | bytearray):
        return b"b" + bytes(value)
    if isinstance(value, numbers.Integral | np.bool_):
        return b"i" + str(int(value)).encode()
    if _is_number(value) and float(value).is_integer():
        return b"i" + str(int(value)).encode()
    return f"o{type(value).__qualname__}:{value!r}".encode()


def _id_fingerprints(ids, key):
    ids = np.asarray(to_numpy(ids), dtype=object)
    if ids.ndim != 1:
        raise InvalidRequestError(f"ids must be 1-dimensional; got shape {ids.shape}")
    out = np.empty(ids.shape[0], dtype=_FP)
    options = {"digest_size": _DIGEST_SIZE, "key": key, "person": _PERSON_ID}
    for i, value in enumerate(ids):  # one digest per id, by nature
        out[i] = hashlib.blake2b(_id_bytes(value), **options).digest()
    return out


def _multiset(fps):
    """Sorted unique values and their counts."""
    return np.unique(np.asarray(fps, dtype=_FP), return_counts=True)


def _held(sorted_fps, counts, fps):
    """The count of each of ``fps`` in the multiset ``(sorted_fps, counts)``."""
    if not sorted_fps.shape[0]:
        return np.zeros(len(fps), dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_fps, fps), sorted_fps.shape[0] - 1)
    return np.where(sorted_fps[pos] == fps, counts[pos], 0)


# -- claims ------------------------------------------------------------------------
class LedgerClaim:
    """Rows (and ids) a ledger sets aside for one request until it ends.

    Returned by :meth:`ErasureLedger.claim` and :meth:`ErasureLedger.claim_ids`,
    which check the request and set its rows aside in one atomic step: until the
    claim ends, a concurrent request for the same rows is refused. Call
    :meth:`commit` once the model is published (the rows are then forgotten) or
    :meth:`release` when the update failed (nothing is marked). As a context
    manager it commits on normal exit and releases on an exception.

    Attributes
    ----------
    n_rows : int
        Rows claimed.
    state : {"pending", "committed", "released"}
        Where the claim stands.
    """

    def __init__(self, ledger, rows, counts, ids):
        self._ledger = ledger
        self._rows, self._counts, self._ids = rows, counts, ids
        self.n_rows = int(counts.sum())
        self.state = "pending"

    def commit(self):
        """Record the claimed rows as forgotten (and drop the claimed ids)."""
        self._ledger._end_claim(self, commit=True)
        return self

    def release(self):
        """Give the claimed rows back; nothing is marked. Idempotent."""
        self._ledger._end_claim(self, commit=False)
        return self

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.release()
        return False

    def __repr__(self):
        return f"LedgerClaim(n_rows={self.n_rows}, state={self.state!r})"


# -- the ledger --------------------------------------------------------------------
class ErasureLedger:
    """Which training rows remain, as keyed fingerprints, and which ids made them.

    Keep the ledger with whoever handles erasure requests, not with the deployed
    model; keep its key in a secret store. Pass it to ``partial_forget(...,
    ledger=ledger)``, or erase by id with :func:`forget_ids`: the request is then
    checked exactly (rows never trained on, rows already forgotten, identical rows
    beyond the copies that remain, unknown or erased ids) before anything changes.

    The ledger holds, for each row that remains, one keyed fingerprint and its
    number of copies, and for each id that remains the keyed fingerprints of the
    id and of its rows. When the last copy of a row is erased its fingerprint is
    dropped, and an erased id's entry with it: a later request for them is refused
    as "not a training row this ledger holds (never trained, or already
    forgotten)", one message that does not say which. What it holds is a
    pseudo-random function of each remaining row: whoever has the key **and** a
    short list of candidate rows (a low-entropy table) can test which of them are
    still training rows, by brute force; an erased row gives nothing back, but a
    copy of the ledger made before the erasure still names it. See
    ``docs/ledger.md``.

    Every method is safe to call from several threads at once; :meth:`claim`
    checks and reserves rows in one atomic step.

    Parameters
    ----------
    key : bytes, default=None
        Secret key of the fingerprints, 16 to 64 bytes. ``None`` draws a random
        one (read it from :attr:`key` to store it). It is not pickled.

    Attributes
    ----------
    n_training_rows : int
        Rows recorded by :meth:`record_training`.
    n_forgotten : int
        Rows recorded as forgotten.
    n_remaining : int
        Rows recorded and not forgotten (``n_training_rows - n_forgotten``).
    n_ids : int
        Ids with rows that remain.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.ledger import ErasureLedger
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.5]])
    >>> y = np.array([0, 1, 1, 0])
    >>> model = ErasableLogisticRegression().fit(X, y)
    >>> ledger = ErasureLedger().record_training(X, y)
    >>> model.partial_forget(X[:1], y[:1], ledger=ledger).n_forgotten_
    1
    >>> ledger.n_forgotten, ledger.n_remaining
    (1, 3)
    """

    def __init__(self, key=None):
        self.set_key(secrets.token_bytes(32) if key is None else key)
        self._lock = threading.RLock()
        self._fingerprints = np.empty(0, dtype=_FP)  # sorted, unique
        self._counts = np.empty(0, dtype=np.int64)  # copies that remain (> 0)
        self._id_keys = np.empty(0, dtype=_FP)  # one per (id, row), sorted by id
        self._id_rows = np.empty(0, dtype=_FP)
        self._n_recorded = 0
        self._n_forgotten = 0
        self._claims = []

    # -- key ---------------------------------------------------------------------
    @property
    def key(self):
        """The secret key (raises if it was not set after unpickling)."""
        if self._key is None:
            raise InvalidRequestError(
                "this ledger's key is not set (keys are never pickled): call "
                "ledger.set_key(key) with the key it was made with"
            )
        return self._key

    def set_key(self, key):
        """Set the secret key (after unpickling). Returns ``self``."""
        if not isinstance(key, bytes | bytearray) or not 16 <= len(key) <= 64:
            raise ValueError("key must be bytes of length 16 to 64")
        self._key = bytes(key)
        return self

    def __getstate__(self):
        with self._lock:
            state = self.__dict__.copy()
        state["_key"] = None
        state["_claims"] = []  # a claim lives in one process, for one request
        del state["_lock"]
        return state

    def __setstate__(self, state):
        if "_forgotten" in state:  # a ledger pickled by sklearn-ssse <= 0.2.0.dev0
            counts, forgotten = state.pop("_counts"), state.pop("_forgotten")
            left = counts - forgotten
            state["_fingerprints"] = state["_fingerprints"][left > 0]
            state["_counts"] = left[left > 0]
            state["_n_recorded"] = int(counts.sum())
            state["_n_forgotten"] = int(forgotten.sum())
        state.setdefault("_id_keys", np.empty(0, dtype=_FP))
        state.setdefault("_id_rows", np.empty(0, dtype=_FP))
        state.setdefault("_claims", [])
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # -- content -----------------------------------------------------------------
    @property
    def n_training_rows(self):
        return self._n_recorded

    @property
    def n_forgotten(self):
        return self._n_forgotten

    @property
    def n_remaining(self):
        with self._lock:
            return int(self._counts.sum())

    @property
    def n_ids(self):
        with self._lock:
            return int(np.unique(self._id_keys).shape[0])

    def record_training(self, X, y, sample_weight=None, *, ids=None):
        """Record the training rows (call with the data given to ``fit``).

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            The training data, exactly as given to ``fit`` (for a pipeline: the
            raw rows that entered it; a DataFrame with strings, categoricals and
            NaNs is fine).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The training labels.
        sample_weight : array-like of shape (n_samples,), default=None
            The training sample weights; rows of weight 0 are not recorded (they
            contribute nothing to the model).
        ids : array-like of shape (n_samples,), default=None
            The id (customer, user...) that made each row; an id may own several
            rows. Only keyed fingerprints of the ids are kept. Needed by
            :meth:`claim_ids` and :func:`forget_ids`.

        Returns
        -------
        self : ErasureLedger
        """
        key = self.key
        fps = row_fingerprints(X, y, sample_weight, key=key)
        n = fps.shape[0]
        keep = np.ones(n, dtype=bool)
        if sample_weight is not None:
            keep = _canonical_weights(sample_weight, n) > 0
        fps = fps[keep]
        id_fps = None
        if ids is not None:
            id_fps = _id_fingerprints(ids, key)
            if id_fps.shape[0] != n:
                raise InvalidRequestError(
                    f"ids must give one id per row: got {id_fps.shape[0]} ids for "
                    f"{n} rows"
                )
            id_fps = id_fps[keep]
        new, new_counts = _multiset(fps)
        with self._lock:
            merged = np.concatenate([self._fingerprints, new])
            weights = np.concatenate([self._counts, new_counts])
            self._fingerprints, inverse = np.unique(merged, return_inverse=True)
            self._counts = np.bincount(
                inverse.ravel(), weights=weights, minlength=self._fingerprints.shape[0]
            ).astype(np.int64)
            if id_fps is not None:
                keys = np.concatenate([self._id_keys, id_fps])
                rows = np.concatenate([self._id_rows, fps])
                order = np.argsort(keys, kind="stable")
                self._id_keys, self._id_rows = keys[order], rows[order]
            self._n_recorded += int(fps.shape[0])
        return self

    def fingerprints(self, X, y, sample_weight=None):
        """Keyed fingerprints of request rows (as :meth:`check` and :meth:`claim`
        take them)."""
        return row_fingerprints(X, y, sample_weight, key=self.key)

    # -- checking and claiming ---------------------------------------------------
    def _pending_rows(self):
        if not self._claims:
            return np.empty(0, dtype=_FP), np.empty(0, dtype=np.int64)
        rows = np.concatenate([c._rows for c in self._claims])
        counts = np.concatenate([c._counts for c in self._claims])
        unique, inverse = np.unique(rows, return_inverse=True)
        return unique, np.bincount(inverse.ravel(), weights=counts).astype(np.int64)

    def _check_locked(self, fingerprints):
        """``(unique, counts)`` of the request if every row is held; else raise."""
        fingerprints = np.asarray(fingerprints, dtype=_FP)
        if not self._n_recorded:
            raise InvalidRequestError(
                "the ledger holds no training rows: call ledger.record_training(X, "
                "y, sample_weight) with the data given to fit"
            )
        unique, inverse, asked = np.unique(
            fingerprints, return_inverse=True, return_counts=True
        )
        inverse = inverse.ravel()
        left = _held(self._fingerprints, self._counts, unique)
        left = left - _held(*self._pending_rows(), unique)
        bad = np.flatnonzero((asked > left)[inverse])
        if bad.size:
            raise InvalidRequestError(
                _NOT_HELD.format(
                    bad=bad.size, n=fingerprints.shape[0], first=bad[:5].tolist()
                )
            )
        return unique, asked.astype(np.int64)

    def check(self, fingerprints):
        """Raise :class:`InvalidRequestError` unless every row can be forgotten.

        A row can be forgotten when the ledger holds at least as many copies of it
        as the request names (copies claimed by a request in progress excluded).
        """
        with self._lock:
            self._check_locked(fingerprints)

    def claim(self, fingerprints):
        """Check rows and set them aside for one request, atomically.

        Parameters
        ----------
        fingerprints : ndarray of shape (n_rows,)
            The request's rows, from :meth:`fingerprints`.

        Returns
        -------
        claim : LedgerClaim
            Commit it once the model is published, release it if the update
            failed; or use it as a context manager around the update.

        Raises
        ------
        InvalidRequestError
            As :meth:`check`; nothing is claimed.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ssse.ledger import ErasureLedger
        >>> X, y = np.eye(3), np.array([0, 1, 0])
        >>> ledger = ErasureLedger().record_training(X, y)
        >>> fps = ledger.fingerprints(X[:1], y[:1])
        >>> with ledger.claim(fps):
        ...     pass  # compute and publish the model here
        >>> ledger.n_forgotten
        1
        """
        with self._lock:
            unique, counts = self._check_locked(fingerprints)
            claim = LedgerClaim(self, unique, counts, np.empty(0, dtype=_FP))
            self._claims.append(claim)
        return claim

    def _id_positions(self, unique_ids):
        """Positions in the id table of the rows of ``unique_ids`` (sorted, unique)
        and which of them the table holds."""
        lo = np.searchsorted(self._id_keys, unique_ids, side="left")
        hi = np.searchsorted(self._id_keys, unique_ids, side="right")
        sizes = hi - lo
        starts = np.repeat(lo - np.cumsum(sizes) + sizes, sizes)
        return np.arange(int(sizes.sum())) + starts, sizes > 0

    def _id_rows_locked(self, id_fps):
        """Sorted unique ids and the fingerprints of their rows; raise if unknown."""
        if not self._id_keys.shape[0]:
            raise InvalidRequestError(
                "the ledger knows no ids: record them with "
                "ledger.record_training(X, y, sample_weight, ids=ids)"
            )
        unique = np.unique(id_fps)
        positions, known = self._id_positions(unique)
        for claim in self._claims:
            known &= ~np.isin(unique, claim._ids)
        if not known.all():
            first_bad = np.flatnonzero(~np.isin(id_fps, unique[known]))
            raise InvalidRequestError(
                f"{int((~known).sum())} of the {unique.shape[0]} ids are not ids of "
                "training rows this ledger holds: never recorded, or already "
                "erased, or claimed by a request in progress (the ledger keeps "
                "nothing of erased ids, so it cannot tell which; first such ids at "
                f"positions {first_bad[:5].tolist()} of ids)"
            )
        return unique, self._id_rows[positions]

    def rows_of(self, ids):
        """Keyed fingerprints of the rows the given ids trained (one per row).

        Parameters
        ----------
        ids : array-like of shape (n_ids,)
            Ids given to :meth:`record_training` (repeats are ignored).

        Returns
        -------
        fingerprints : ndarray of shape (n_rows,), dtype ``S16``

        Raises
        ------
        InvalidRequestError
            An id the ledger does not hold (never recorded, or already erased).
        """
        id_fps = _id_fingerprints(ids, self.key)
        with self._lock:
            return self._id_rows_locked(id_fps)[1].copy()

    def _claim_ids_locked(self, id_fps, row_fps):
        unique_ids, expected = self._id_rows_locked(id_fps)
        exp, exp_counts = _multiset(expected)
        got, inverse, got_counts = np.unique(
            row_fps, return_inverse=True, return_counts=True
        )
        allowed = _held(exp, exp_counts, got)
        extra = np.flatnonzero((got_counts > allowed)[inverse.ravel()])
        if extra.size or row_fps.shape[0] != expected.shape[0]:
            raise InvalidRequestError(
                f"the rows given are not exactly the rows these ids trained: the "
                f"{unique_ids.shape[0]} ids trained {expected.shape[0]} rows, "
                f"{row_fps.shape[0]} were given, and {extra.size} of them match no "
                "row of these ids (first at rows "
                f"{extra[:5].tolist()}). Give every row of the ids, exactly as at "
                "training: the raw rows that entered the model, the same columns in "
                "the same order, the same labels and weights, floats not rounded"
            )
        unique, counts = self._check_locked(row_fps)
        claim = LedgerClaim(self, unique, counts, unique_ids)
        self._claims.append(claim)
        return claim

    def check_ids(self, ids, X, y, sample_weight=None):
        """Raise unless ``(X, y, sample_weight)`` are exactly the rows ``ids`` trained.

        Parameters
        ----------
        ids : array-like
            The ids to erase (repeats are ignored, so an id column aligned with
            the rows can be given as it is).
        X : {array-like, sparse matrix, DataFrame} of shape (n_rows, n_features)
            Every row of these ids, raw, exactly as given at training.
        y : array-like of shape (n_rows,) or (n_rows, n_outputs)
            Their labels.
        sample_weight : array-like of shape (n_rows,), default=None
            Their training weights.

        Raises
        ------
        InvalidRequestError
            Unknown or already erased ids, rows that are not exactly those the ids
            trained (missing, extra, or with other values, labels or weights).
        """
        self.claim_ids(ids, X, y, sample_weight).release()

    def claim_ids(self, ids, X, y, sample_weight=None):
        """:meth:`check_ids`, then claim the rows and ids (as :meth:`claim`).

        Returns
        -------
        claim : LedgerClaim
            Committing it forgets the rows and drops the ids from the ledger.
        """
        key = self.key
        id_fps = _id_fingerprints(ids, key)
        row_fps = row_fingerprints(X, y, sample_weight, key=key)
        if sample_weight is not None:
            weights = _canonical_weights(sample_weight, row_fps.shape[0])
            if np.any(~(weights > 0)):
                raise InvalidRequestError(
                    "sample_weight must be positive: a row of weight 0 contributed "
                    "nothing to the model and is not in the ledger"
                )
        with self._lock:
            return self._claim_ids_locked(id_fps, row_fps)

    def _end_claim(self, claim, *, commit):
        with self._lock:
            if claim.state != "pending":
                if commit:
                    raise InvalidRequestError(
                        f"this claim was already {claim.state}: claim the rows again"
                    )
                return
            self._claims.remove(claim)
            claim.state = "committed" if commit else "released"
            # The claim keeps nothing of the rows once it ends.
            rows, claimed, ids = claim._rows, claim._counts, claim._ids
            claim._rows = claim._ids = np.empty(0, dtype=_FP)
            claim._counts = np.empty(0, dtype=np.int64)
            if not commit:
                return
            pos = np.searchsorted(self._fingerprints, rows)
            counts = self._counts.copy()
            counts[pos] -= claimed  # the claimed copies are there (checked)
            gone = self._fingerprints[pos][counts[pos] == 0]
            kept = counts > 0
            self._fingerprints, self._counts = self._fingerprints[kept], counts[kept]
            if self._id_keys.shape[0] and (ids.shape[0] or gone.shape[0]):
                # Erased ids go, and so does any id's reference to a row of which
                # no copy remains: nothing of an erased row is kept.
                keep = np.ones(self._id_keys.shape[0], dtype=bool)
                keep[self._id_positions(ids)[0]] = False
                if gone.shape[0]:
                    keep &= ~np.isin(self._id_rows, gone)
                self._id_keys, self._id_rows = self._id_keys[keep], self._id_rows[keep]
            self._n_forgotten += claim.n_rows

    def mark_forgotten(self, fingerprints):
        """Check rows and record them as forgotten, atomically.

        Equivalent to ``claim(fingerprints).commit()``; prefer :meth:`claim`
        around the update, so that two requests for one row cannot both pass.
        """
        self.claim(fingerprints).commit()


# -- erasing by id -----------------------------------------------------------------
def _request_id_params(model, request_id):
    """How to hand ``request_id`` to ``compose.forget`` for this model."""
    from sklearn.model_selection._search import BaseSearchCV
    from sklearn.pipeline import Pipeline

    from .compose import forget

    if request_id is None:
        return {}
    if "request_id" in inspect.signature(forget).parameters:
        return {"request_id": request_id}
    target = model.best_estimator_ if isinstance(model, BaseSearchCV) else model
    if isinstance(target, Pipeline):
        from sklearn import get_config

        if get_config().get("enable_metadata_routing", False):
            return {"request_id": request_id}
        return {f"{target.steps[-1][0]}__request_id": request_id}
    return {"request_id": request_id}


def forget_ids(model, ledger, ids, X, y, sample_weight=None, *, request_id=None):
    """Erase the rows of ``ids`` from a fitted model, checked against a ledger.

    The route for "customer C0421 asked to be forgotten": the ledger checks that
    ``(X, y, sample_weight)`` are exactly the rows those ids trained (every one,
    raw, as they entered the model at fit), claims them, and
    :func:`sklearn_ssse.compose.forget` erases them from the model; the ledger then
    forgets the rows and the ids. Unknown ids, ids already erased and rows that do
    not match are refused, and any error leaves the model and the ledger as they
    were.

    Parameters
    ----------
    model : fitted estimator, Pipeline, or search
        Anything :func:`sklearn_ssse.compose.forget` takes.
    ledger : ErasureLedger
        The ledger of the training rows, recorded with ``ids``.
    ids : array-like
        The ids to erase (repeats ignored: an id column aligned with ``X`` works).
    X : {array-like, DataFrame} of shape (n_rows, n_features)
        Every row of these ids, raw, exactly as given to ``fit``.
    y : array-like of shape (n_rows,)
        Their labels.
    sample_weight : array-like of shape (n_rows,), default=None
        Their training weights.
    request_id : str, default=None
        The ticket of the request, recorded by the model (no personal data).

    Returns
    -------
    model : object
        The same model, updated.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.compose import make_column_transformer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ssse import ErasableLogisticRegression
    >>> from sklearn_ssse.ledger import ErasureLedger, forget_ids
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"id": [f"C{i:04d}" for i in range(40)],
    ...                    "x": rng.normal(size=40), "z": rng.normal(size=40)})
    >>> y = (df.x > 0).to_numpy().astype(int)
    >>> X = df[["x", "z"]]
    >>> pipe = make_pipeline(StandardScaler(), ErasableLogisticRegression()).fit(X, y)
    >>> ledger = ErasureLedger().record_training(X, y, ids=df.id)
    >>> rows = (df.id == "C0007").to_numpy()
    >>> forget_ids(pipe, ledger, ["C0007"], X[rows], y[rows])[-1].n_forgotten_
    1
    >>> ledger.n_ids
    39
    """
    from .compose import forget

    params = _request_id_params(model, request_id)
    with ledger.claim_ids(ids, X, y, sample_weight):
        forget(model, X, y, sample_weight=sample_weight, **params)
    return model
