"""The array API path: the state on the device and namespace of the training data.

Under ``sklearn.config_context(array_api_dispatch=True)``, an
:class:`~sklearn_ssse.ErasableLogisticRegression` fitted on PyTorch, CuPy or
array-api-strict arrays keeps its whole erasure state (inverse curvature, parameters,
damping, gradients) as arrays of that namespace on that device, and computes
requests there. NumPy arrays always take the original NumPy/SciPy/BLAS code (the
functions here report ``xp=None`` for them), so the NumPy path is unchanged.

What goes to the host, and why:

- the labels and weights of the rows (``n`` at ``fit``, ``k`` per request): class
  counts and per-class weight sums are ``n_classes`` numbers that decide whether a
  request is valid (an error message needs them on the host anyway), as
  scikit-learn's own ``LogisticRegression`` encodes labels on the host;
- scalars that decide a refusal (is the downdated curvature positive definite, are
  the new parameters finite, is a row larger than any training row) and the step
  norm written in the request's record;
- for hashing only (hashing is host-side by nature): the rows of a request checked
  against an :class:`~sklearn_ssse.ledger.ErasureLedger`; without a ledger, the
  duplicate check moves only the request's row norms, and only rows whose norm,
  label and weight coincide are then moved and hashed.
"""

import math

import numpy as np
import scipy.sparse as sp
from sklearn.externals import array_api_compat
from sklearn.utils._array_api import _convert_to_numpy

__all__ = ["namespace", "to_numpy", "to_device", "cholesky", "nbytes"]

_NUMPY_TYPES = (np.ndarray, np.generic, float, int)


def namespace(*arrays):
    """``(xp, device)`` of some arrays; ``xp`` is ``None`` for NumPy (and sparse).

    Unlike :func:`sklearn.utils._array_api.get_namespace` this does not depend on
    ``array_api_dispatch``: a state built on the GPU keeps computing there, and
    NumPy arrays keep the NumPy code.
    """
    for a in arrays:  # the NumPy path pays a few isinstance checks, no more
        if not (a is None or isinstance(a, _NUMPY_TYPES) or sp.issparse(a)):
            break
    else:
        return None, None
    arrays = [
        a
        for a in arrays
        if not (a is None or isinstance(a, _NUMPY_TYPES) or sp.issparse(a))
    ]
    xp = array_api_compat.array_namespace(*arrays)
    if xp.__name__ == "array_api_strict" and hasattr(xp, "set_array_api_strict_flags"):
        xp.set_array_api_strict_flags(api_version="2025.12")
    return xp, array_api_compat.device(arrays[0])


def is_numpy(array):
    """Whether the array takes the NumPy path (NumPy arrays, sparse matrices)."""
    return namespace(array)[0] is None


def to_numpy(array):
    """A NumPy copy of an array of any namespace (anything else is returned as it
    is: NumPy arrays, sparse matrices, lists)."""
    if (
        array is None
        or isinstance(array, np.ndarray)
        or sp.issparse(array)
        or not array_api_compat.is_array_api_obj(array)
    ):
        return array
    xp, _ = namespace(array)
    if xp is None:
        return np.asarray(array)
    return _convert_to_numpy(array, xp)


def to_device(array, xp, device, dtype=None):
    """``array`` (NumPy or of ``xp``) as an ``xp`` array on ``device``."""
    if xp is None:
        return array if dtype is None else np.asarray(array, dtype=dtype)
    if isinstance(array, np.ndarray | np.generic):
        array = np.ascontiguousarray(array)
    return xp.asarray(array, dtype=dtype, device=device)


def cholesky(M, xp):
    """Lower Cholesky factor of ``M``; :class:`numpy.linalg.LinAlgError` unless
    ``M`` is (numerically) positive definite, whatever the namespace.

    PyTorch raises its own error type, CuPy returns NaNs instead of raising: both
    become ``LinAlgError``. The finiteness check is one scalar read on the host.
    """
    try:
        L = xp.linalg.cholesky(M)
    except Exception as exc:  # torch.linalg.LinAlgError, numpy's, ...
        if "LinAlgError" in type(exc).__name__ or "positive" in str(exc).lower():
            raise np.linalg.LinAlgError(str(exc)) from exc
        raise
    if not bool(xp.all(xp.isfinite(xp.linalg.diagonal(L)))):
        raise np.linalg.LinAlgError("matrix is not positive definite")
    return L


def nbytes(array):
    """Bytes held by an array of any namespace."""
    if isinstance(array, np.ndarray):
        return array.nbytes
    xp, _ = namespace(array)
    return math.prod(array.shape) * xp.finfo(array.dtype).bits // 8


def eye_like(n, M, xp, device):
    return xp.eye(n, dtype=M.dtype, device=device)


def symmetrize(M):
    """``(M + Mᵀ) / 2``: GPU products of ``Aᵀ A`` are not bit-symmetric."""
    return (M + M.T) / 2
