"""Recognising rows: keyed fingerprints, kept apart from the deployable model.

A request must name rows the model was trained on, each at most once. The model
itself cannot check that exactly without keeping something per training row, and a
model that keeps per-row information becomes an oracle for "was this row in the
training set?" wherever it is shipped. sklearn-ssse therefore keeps that knowledge
in a separate object, an :class:`ErasureLedger`, held by whoever handles requests:

- it stores one **keyed** fingerprint (BLAKE2b with a secret key, a pseudo-random
  function) per training row, with multiplicities, and how many of each were
  forgotten;
- the key is never pickled with the ledger: a stolen or backed-up ledger file
  answers nothing without it (``set_key`` restores it after loading);
- :meth:`~sklearn_ssse.base.ErasableMixin.partial_forget` accepts ``ledger=`` and
  then refuses, before anything changes, rows that were never training rows with
  those labels and weights, and rows already forgotten.

Without a ledger the model still refuses what it can tell from its own aggregate
state: duplicated rows inside one request, rows larger than any training row, and
requests that would make the stored curvature indefinite.
"""

import hashlib
import secrets
import threading

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array

from ._array_api import to_numpy
from .exceptions import InvalidRequestError

__all__ = ["ErasureLedger", "row_fingerprints"]

_DIGEST_SIZE = 16


def _canonical_rows(X):
    """CSR float64 with sorted indices and no explicit zeros (dense or sparse in)."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float64, copy=True)
        X.sum_duplicates()
        X.eliminate_zeros()
        X.sort_indices()
        return X
    X = check_array(X, dtype=np.float64, ensure_min_samples=0, ensure_all_finite=False)
    return sp.csr_matrix(X)


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


def row_fingerprints(X, y, sample_weight=None, *, key=None):
    """One fingerprint per row of ``(X, y, sample_weight)``.

    Two rows get the same fingerprint exactly when their non-zero values (as
    float64), their labels and their weights are equal, whether given dense or
    sparse. With ``key`` the fingerprint is keyed BLAKE2b (a pseudo-random
    function of the row): without the key it says nothing about the row.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_rows, n_features)
        The rows.
    y : array-like of shape (n_rows,) or (n_rows, n_outputs)
        Their labels.
    sample_weight : array-like of shape (n_rows,), default=None
        Their weights (ones when ``None``).
    key : bytes, default=None
        The secret key (at most 64 bytes); ``None`` for unkeyed fingerprints.

    Returns
    -------
    fingerprints : ndarray of shape (n_rows,), dtype ``S16``
    """
    # Hashing is host-side by nature: array API inputs (GPU tensors...) are
    # copied to NumPy here, and only here.
    X, y, sample_weight = (to_numpy(a) for a in (X, y, sample_weight))
    X = _canonical_rows(X)
    n = X.shape[0]
    weights = (
        np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
    )
    labels = _label_bytes(y)
    if len(labels) != n or weights.shape != (n,):
        raise InvalidRequestError(
            f"X, y and sample_weight must have the same number of rows; got {n}, "
            f"{len(labels)} and {weights.shape[0] if weights.ndim else 1}"
        )
    indices = X.indices.astype(np.int64)
    ptr = X.indptr
    out = np.empty(n, dtype=f"S{_DIGEST_SIZE}")
    options = {"digest_size": _DIGEST_SIZE}
    if key is not None:
        options["key"] = key
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


class ErasureLedger:
    """Which rows were trained on and which were forgotten, as keyed fingerprints.

    Keep the ledger with whoever handles erasure requests, not with the deployed
    model; keep its key in a secret store. Pass it to ``partial_forget(...,
    ledger=ledger)``: the request is then checked exactly (rows never trained on,
    rows already forgotten, duplicates beyond their multiplicity in the training
    set) before anything changes, and recorded after the model is updated.

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
    >>> ledger.n_forgotten
    1
    """

    def __init__(self, key=None):
        self.set_key(secrets.token_bytes(32) if key is None else key)
        self._fingerprints = np.empty(0, dtype=f"S{_DIGEST_SIZE}")
        self._counts = np.empty(0, dtype=np.int64)
        self._forgotten = np.empty(0, dtype=np.int64)
        self._lock = threading.Lock()

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
        state = self.__dict__.copy()
        state["_key"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- content -----------------------------------------------------------------
    @property
    def n_training_rows(self):
        return int(self._counts.sum())

    @property
    def n_forgotten(self):
        return int(self._forgotten.sum())

    def record_training(self, X, y, sample_weight=None):
        """Record the training rows (call with the data given to ``fit``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The training labels.
        sample_weight : array-like of shape (n_samples,), default=None
            The training sample weights; rows of weight 0 are not recorded (they
            contribute nothing to the model).

        Returns
        -------
        self : ErasureLedger
        """
        fps = row_fingerprints(X, y, sample_weight, key=self.key)
        if sample_weight is not None:
            fps = fps[np.asarray(to_numpy(sample_weight)) > 0]
        with self._lock:
            merged = np.concatenate([np.repeat(self._fingerprints, self._counts), fps])
            forgotten = dict(zip(self._fingerprints.tolist(), self._forgotten))
            self._fingerprints, self._counts = np.unique(merged, return_counts=True)
            self._forgotten = np.array(
                [forgotten.get(f, 0) for f in self._fingerprints.tolist()],
                dtype=np.int64,
            )
        return self

    def fingerprints(self, X, y, sample_weight=None):
        """Keyed fingerprints of request rows (as :meth:`check` and :meth:`mark`
        take them)."""
        return row_fingerprints(X, y, sample_weight, key=self.key)

    def check(self, fingerprints):
        """Raise :class:`InvalidRequestError` unless every row can be forgotten.

        A row can be forgotten when it was recorded as a training row and fewer
        of its copies were forgotten than were trained on (counting its copies in
        this request).
        """
        if not len(self._fingerprints):
            raise InvalidRequestError(
                "the ledger holds no training rows: call ledger.record_training(X, "
                "y, sample_weight) with the data given to fit"
            )
        unique, inverse, asked = np.unique(
            fingerprints, return_inverse=True, return_counts=True
        )
        pos = np.clip(
            np.searchsorted(self._fingerprints, unique), 0, len(self._fingerprints) - 1
        )
        known = self._fingerprints[pos] == unique
        unknown = np.flatnonzero(~known[inverse])
        if unknown.size:
            raise InvalidRequestError(
                f"{unknown.size} of the {len(fingerprints)} rows were never training "
                "rows with these labels and weights (the ledger does not know them; "
                f"first such rows: {unknown[:5].tolist()})"
            )
        left = self._counts[pos] - self._forgotten[pos]
        over = np.flatnonzero((asked > left)[inverse])
        if over.size:
            raise InvalidRequestError(
                f"{over.size} of the {len(fingerprints)} rows were already forgotten "
                "(or are repeated more often than in the training set; first such "
                f"rows: {over[:5].tolist()})"
            )

    def mark_forgotten(self, fingerprints):
        """Record rows as forgotten (after :meth:`check` passed)."""
        with self._lock:
            self.check(fingerprints)
            pos = np.searchsorted(self._fingerprints, fingerprints)
            np.add.at(self._forgotten, pos, 1)
