"""Memory of the erasure state, known before anything is allocated.

``fit`` stores the inverse curvature, whose size grows as the square of the number
of parameters in each block: a dense block over a text model's 28 000 features is
6 GB, a multinomial one over 6 classes 220 GB. This module estimates the stored
state and the peak memory of building it (and of a later request) from the shape
of the problem alone, so that an estimator can refuse *before* its solver runs,
with a message that names the options that fit.

The estimates count the arrays the erasure state allocates, not the training
data, the solver's own memory or Python's overhead; they are upper bounds of what
:mod:`sklearn_ssse.base` and :mod:`sklearn_ssse._curvature` allocate for the
dense-block representation, within a few working-memory chunks.
"""

import os
from dataclasses import dataclass, field

import numpy as np
from sklearn import get_config
from sklearn.utils.validation import _num_features, _num_samples

from ._array_api import to_numpy
from ._curvature import BlockDiagonalInverse, block_bounds
from .exceptions import CurvatureMemoryError

__all__ = [
    "CurvatureMemoryError",
    "MemoryEstimate",
    "check_memory_budget",
    "estimate_block_diagonal",
    "format_bytes",
    "physical_memory",
    "resolve_budget",
]

# Share of the machine's memory that ``memory_budget="auto"`` allows.
AUTO_BUDGET_FRACTION = 0.5
# Assumed physical memory where the system does not say (then "auto" is half).
FALLBACK_PHYSICAL_BYTES = 8 * 2**30
# A build's chunks of rows hold at most this much (see _maths.row_chunks and
# _logistic_maths.sparse_row_chunks), and a few such temporaries live at once.
CHUNK_BYTES = 64 * 2**20


def physical_memory():
    """Bytes of memory this process may use: the machine's physical memory, or a
    container's (cgroup) limit when lower. ``None`` where the system does not
    say."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        total = None
    if total is not None and total <= 0:
        total = None
    for path in (
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ):
        try:
            with open(path) as file:
                limit = int(file.read().strip())
        except (OSError, ValueError):  # absent, or "max" (no limit)
            continue
        if 0 < limit < (total or np.inf):
            total = limit
    return total


def resolve_budget(memory_budget):
    """Bytes allowed by a ``memory_budget`` parameter.

    Parameters
    ----------
    memory_budget : "auto", float or None
        ``"auto"``: half of :func:`physical_memory` (half of 8 GiB where the
        system does not say). A number: that many MiB (2**20 bytes, as
        scikit-learn's ``working_memory``). ``None``: no limit.

    Returns
    -------
    int or None
        The budget in bytes, ``None`` for no limit.
    """
    if memory_budget is None:
        return None
    if isinstance(memory_budget, str):
        if memory_budget != "auto":
            raise ValueError(
                f"memory_budget must be 'auto', a number of MiB or None; "
                f"got {memory_budget!r}"
            )
        total = physical_memory() or FALLBACK_PHYSICAL_BYTES
        return int(AUTO_BUDGET_FRACTION * total)
    return int(float(memory_budget) * 2**20)


def format_bytes(n_bytes):
    """``1.5 GiB``-style text for a number of bytes."""
    value = float(n_bytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "bytes":
        return f"{int(value)} bytes"
    return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory of one way of storing the erasure state, before it is built.

    Attributes
    ----------
    structure : str
        Short description (e.g. ``"1 dense block of 7 915 coordinates"``).
    params : dict
        The estimator parameters that select it (e.g. ``{"block_size": None}``).
    stored_bytes : int
        The erasure state kept by the fitted model.
    fit_peak_bytes : int
        Peak of building it in ``fit`` (the training data and the solver's own
        memory not counted).
    request_peak_bytes : int
        Peak of a ``partial_forget`` request (it holds the old and the new state
        until it succeeds), the rows of the request not counted.
    dtype : numpy.dtype
        The dtype of the stored arrays.
    """

    structure: str
    params: dict = field(compare=False)
    stored_bytes: int
    fit_peak_bytes: int
    request_peak_bytes: int
    dtype: np.dtype = np.dtype(np.float64)

    @property
    def peak_bytes(self):
        """The larger of the two peaks: what must fit in the budget."""
        return max(self.fit_peak_bytes, self.request_peak_bytes)

    def describe(self):
        """One line: the parameters, the stored bytes and the peak."""
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return (
            f"{params} ({self.structure}, {np.dtype(self.dtype).name}): "
            f"stored {format_bytes(self.stored_bytes)}, "
            f"peak {format_bytes(self.peak_bytes)}"
        )


def estimate_block_diagonal(
    bounds,
    dtype,
    *,
    n_samples,
    n_classes,
    n_groups=1,
    class_sums=False,
    max_request_rank=None,
    params=None,
):
    """Memory of a block-diagonal inverse curvature over the blocks ``bounds``.

    Parameters
    ----------
    bounds : list of (int, int)
        The blocks' coordinate ranges (:func:`~sklearn_ssse._curvature.block_bounds`).
    dtype : dtype
        The dtype of the stored blocks (the training data's).
    n_samples : int
        Number of training rows.
    n_classes : int
        Number of classes (per-class gradient sums are ``n_classes × n_params``).
    n_groups : int, default=1
        Groups of rows built in parallel: each holds its own partial blocks.
    class_sums : bool, default=False
        Whether the state keeps per-class gradient sums
        (``class_weight="balanced"``).
    max_request_rank : int, default=None
        The largest rank a request can have (training rows × curvature factors
        per row); ``None``: unbounded.
    params : dict, default=None
        The estimator parameters that select this structure (for messages).

    Returns
    -------
    MemoryEstimate
    """
    itemsize = np.dtype(dtype).itemsize
    sizes = np.array([stop - start for start, stop in bounds], dtype=np.int64)
    n_params = int(sizes.sum())
    blocks = BlockDiagonalInverse.estimate_nbytes(n_params, dtype, bounds=bounds)
    # Requests accumulate low-rank factors next to the blocks until compaction.
    factors = BlockDiagonalInverse.estimate_factor_nbytes(bounds, dtype)
    largest = int(sizes.max(initial=0)) ** 2 * itemsize
    # Fitted point, coefficients, residual gradient, damping and data diagonals,
    # one more for the step; the class sums of class_weight="balanced".
    vectors = (6 + n_classes * class_sums) * n_params * itemsize
    # Chunk temporaries: at most the working memory, at most a few weighted
    # copies of the widest block's columns for every row.
    cap = min(get_config()["working_memory"] * 2**20, CHUNK_BYTES)
    per_row = (2 * int(sizes.max(initial=0)) + 8 * n_classes) * itemsize
    working = 2 * int(min(cap, n_samples * per_row))
    sums = n_classes * n_params * itemsize  # the gradient sums of a pass
    # Building: the blocks (one partial set per parallel group, summed into a
    # total), inverted in place. A one-group build of float32 data sums its
    # blocks in float64 (counted whatever the groups: parallel groups sum in the
    # state's dtype); each chunk's product is a temporary of the largest block,
    # and a chunk may be raised to as many bytes (_logistic_maths.gram_chunk_rows).
    accumulators = 1 if n_groups <= 1 else n_groups + 1
    widening = blocks * (8 // itemsize - 1)
    fit_peak = accumulators * blocks + widening + 2 * largest + vectors + sums + working
    # A request holds the old and the new blocks, plus two temporaries of the
    # largest block (Woodbury's correction and sum; a dense re-solve's system and
    # solution). A request of higher rank than a block's size takes the dense
    # path, which also holds the rows' Gram blocks: one more copy, counted when
    # the training set has rows enough for such a request.
    smallest = int(sizes.min(initial=0))
    high_rank = max_request_rank is None or smallest < max_request_rank
    request_peak = (
        (2 + high_rank) * blocks + factors + 2 * largest + vectors + sums + working
    )
    if len(sizes) == 1:
        structure = f"1 dense block of {n_params:,} coordinates"
    else:
        structure = (
            f"{len(sizes):,} dense blocks of up to {int(sizes.max()):,} "
            f"coordinates, {n_params:,} in all"
        )
    return MemoryEstimate(
        structure=structure,
        params={} if params is None else dict(params),
        stored_bytes=blocks + factors + vectors,
        fit_peak_bytes=fit_peak,
        request_peak_bytes=request_peak,
        dtype=np.dtype(dtype),
    )


def _training_shape(X, y):
    """``(n_samples, n_features, n_classes, dtype)`` the validated training data
    will have, read without converting anything; ``None`` when it cannot be read
    (``fit``'s own validation then raises the proper error) or when ``y`` is not
    a single column of at least two classes (no erasure state is built)."""
    try:
        n_samples = _num_samples(X)
        n_features = _num_features(X)
        y = np.asarray(to_numpy(y))  # labels only; array-API labels may be on a device
        if y.ndim != 1 and not (y.ndim == 2 and y.shape[1] == 1):
            return None
        n_classes = len(np.unique(y))
    except (TypeError, ValueError):
        return None
    if n_classes < 2:
        return None
    dtypes = getattr(X, "dtypes", None)  # a DataFrame's columns
    if dtypes is not None:
        float32 = len(dtypes) > 0 and all(d == np.float32 for d in dtypes)
    else:
        float32 = getattr(X, "dtype", None) == np.float32
    dtype = np.dtype(np.float32 if float32 else np.float64)
    return n_samples, n_features, n_classes, dtype


def block_estimate(estimator, maths, dtype, *, n_samples, n_classes, block_size):
    """:func:`estimate_block_diagonal` of ``estimator``'s blocks for ``block_size``."""
    from ._maths import n_row_groups

    bounds = block_bounds(maths.n_params, block_size, maths.group_bounds())
    multiple = getattr(estimator, "fisher_batch_size", 1)
    kind = estimator._curvature_kind()
    return estimate_block_diagonal(
        bounds,
        dtype,
        n_samples=n_samples,
        n_classes=n_classes,
        n_groups=n_row_groups(n_samples, multiple),
        class_sums=getattr(estimator, "class_weight", None) == "balanced",
        max_request_rank=n_samples * maths.factor_rank(kind),
        params={"block_size": block_size},
    )


def _alternatives(estimator, maths, dtype, n_samples, n_classes, budget, X=None):
    """Options that fit ``budget``: the other ``curvature_structure`` values
    (``"cg"``, ``"cg-class"``) where the estimator has them, the largest
    power-of-two ``block_size``, ``"class"``, and float32 data."""
    options = []
    current = getattr(estimator, "curvature_structure", None)
    if current is not None and X is not None:
        for structure in ("cg", "cg-class"):
            if structure == current:
                continue
            probe = estimator.__class__(**estimator.get_params(deep=False))
            probe.set_params(curvature_structure=structure)
            for candidate in probe._curvature_candidates(
                maths, dtype, n_samples, n_classes, X=X
            ):
                if (
                    candidate.params.get("curvature_structure") == structure
                    and candidate.peak_bytes <= budget
                    and candidate not in options
                ):
                    options.append(candidate)

    def estimate(block_size, dtype=dtype):
        return block_estimate(
            estimator,
            maths,
            dtype,
            n_samples=n_samples,
            n_classes=n_classes,
            block_size=block_size,
        )

    fitting = None
    size = 1
    while size < maths.n_params:
        candidate = estimate(size)
        if candidate.peak_bytes > budget:
            break
        fitting, size = candidate, size * 2
    if fitting is not None:
        options.append(fitting)
    if estimator.block_size != "class" and len(maths.group_bounds()) > 1:
        candidate = estimate("class")
        if candidate.peak_bytes <= budget:
            options.append(candidate)
    if dtype == np.float64:
        candidate = estimate(estimator.block_size, np.float32)
        if candidate.peak_bytes <= budget:
            options.append(candidate)
    return options


def _offers_approximations(estimator):
    from ._curvature_structures import offers_approximations

    return offers_approximations(estimator)


def check_memory_budget(estimator, X, y):
    """Estimate the erasure state of ``estimator.fit(X, y)`` and refuse it early.

    Called by ``fit`` before the solver runs; prints the estimate when the
    estimator's ``verbose`` is set. The estimator provides
    ``_erasure_maths_for(n_features, n_classes)`` (its model family's maths for a
    problem of that shape) and may provide ``_curvature_candidates(maths, dtype,
    n_samples, n_classes, X=X)``: the :class:`MemoryEstimate` of each structure
    it would accept, in order of preference (default: the dense blocks of its
    ``block_size``). The first that fits ``memory_budget`` is returned; the
    estimator builds the same one (its ``params`` name it).

    Parameters
    ----------
    estimator : estimator
        The estimator about to be fitted (parameters validated).
    X, y
        The training data as given to ``fit``.

    Returns
    -------
    MemoryEstimate or None
        The chosen structure's estimate; ``None`` when the data's shape cannot be
        read before validation (``fit`` then refuses the data itself).

    Raises
    ------
    CurvatureMemoryError
        If no candidate fits the budget. The message gives the estimates and the
        options that fit. Under ``curvature_structure="auto"`` the estimator's
        approximations (``_curvature_candidates(..., approximations=True)``)
        are tried first: the most faithful that fits is returned with an
        :class:`~sklearn_ssse.exceptions.ApproximateCurvatureWarning`.
    """
    shape = _training_shape(X, y)
    if shape is None:
        return None
    n_samples, n_features, n_classes, dtype = shape
    maths = estimator._erasure_maths_for(n_features, n_classes)
    if hasattr(estimator, "_curvature_candidates"):
        candidates = estimator._curvature_candidates(
            maths, dtype, n_samples, n_classes, X=X
        )
    else:
        candidates = [
            block_estimate(
                estimator,
                maths,
                dtype,
                n_samples=n_samples,
                n_classes=n_classes,
                block_size=estimator.block_size,
            )
        ]
    memory_budget = getattr(estimator, "memory_budget", "auto")
    budget = resolve_budget(memory_budget)
    approximations = []
    if (
        budget is not None
        and getattr(estimator, "curvature_structure", None) == "auto"
        and _offers_approximations(estimator)
        and not any(candidate.peak_bytes <= budget for candidate in candidates)
    ):  # "auto" falls back to the most faithful approximation that fits
        approximations = estimator._curvature_candidates(
            maths, dtype, n_samples, n_classes, X=X, approximations=True
        )[len(candidates) :]
    for candidate in candidates + approximations:
        if budget is None or candidate.peak_bytes <= budget:
            if getattr(estimator, "verbose", 0):
                print(
                    f"[{type(estimator).__name__}] erasure state: "
                    f"{candidate.describe()}",
                    flush=True,
                )
            if any(candidate is option for option in approximations):
                _warn_approximation(
                    estimator, candidates, candidate, budget, memory_budget
                )
            return candidate
    options = _alternatives(estimator, maths, dtype, n_samples, n_classes, budget, X)
    raise CurvatureMemoryError(
        _message(estimator, candidates, options, budget, memory_budget)
    )


def _allowed(budget, memory_budget):
    """The budget in words, for messages."""
    if memory_budget == "auto":
        total = physical_memory()
        return f"{format_bytes(budget)}, memory_budget='auto': half of " + (
            f"this machine's {format_bytes(total)}" if total else "8 GiB"
        )
    return f"{format_bytes(budget)}, memory_budget={memory_budget:g} MiB"


def _warn_approximation(estimator, candidates, chosen, budget, memory_budget):
    """:class:`~sklearn_ssse.exceptions.ApproximateCurvatureWarning`: ``"auto"``
    chose ``chosen``, an approximation, because none of ``candidates`` fits."""
    import warnings

    from .base import _caller_stacklevel
    from .exceptions import ApproximateCurvatureWarning

    size = chosen.params.get("block_size")
    if size is None:
        what = (
            "curvature_structure='cg-class' (the exact curvature of each class "
            "without the terms between classes; for a binary model the same "
            "step with a looser certificate)"
        )
    elif size == 1:
        what = "block_size=1 (the diagonal of the curvature only)"
    else:
        what = (
            f"block_size={size} (a block-diagonal approximation: the curvature "
            f"between blocks of {size} coordinates is dropped)"
        )
    tried = "; ".join(candidate.describe() for candidate in candidates)
    warnings.warn(
        f"{type(estimator).__name__}: the exact curvature would not fit in the "
        f"memory budget ({_allowed(budget, memory_budget)}): {tried}. "
        f"curvature_structure='auto' chose {what}, stored "
        f"{format_bytes(chosen.stored_bytes)} (peak "
        f"{format_bytes(chosen.peak_bytes)}); requests may then land further from "
        "the refit. Options: a larger memory_budget (a number of MiB; None "
        "skips the check), "
        + ("float32 data, " if chosen.dtype == np.float64 else "")
        + "curvature_structure='cg-rows' (the "
        "exact step from the training rows, which the model then holds), or "
        "set curvature_structure / block_size explicitly to silence this "
        "warning.",
        ApproximateCurvatureWarning,
        stacklevel=_caller_stacklevel(),
    )


def _message(estimator, candidates, options, budget, memory_budget):
    name = type(estimator).__name__
    allowed = _allowed(budget, memory_budget)
    lines = [
        f"{name}: the erasure state would not fit in the memory budget "
        f"({allowed}); nothing was fitted. Estimated (peak: while fitting, or "
        "while a request holds the old and new state):"
    ]
    lines += [f"  - {candidate.describe()}" for candidate in candidates]
    if options:
        lines.append("Options that fit:")
        lines += [f"  - {option.describe()}" for option in options]
        if any(option.dtype == np.float32 for option in options):
            lines.append("    (float32: fit on X.astype(np.float32))")
    lines.append(
        "  - or a larger memory_budget (a number of MiB; None skips this check)."
    )
    return "\n".join(lines)


def check_outputs_memory_budget(estimator, X, Y, n_jobs=None):
    """:func:`check_memory_budget` for one clone of ``estimator`` per column of
    ``Y``, all held together (a multi-output model).

    The stored states add up; a fit builds up to ``n_jobs`` outputs at once; a
    request computes every output's new state before publishing any. Checked
    against ``estimator.memory_budget``.

    Returns
    -------
    MemoryEstimate or None
        ``None`` when ``estimator`` keeps no erasure state or the data's shape
        cannot be read before validation.

    Raises
    ------
    CurvatureMemoryError
        If the outputs' states together do not fit the budget.
    """
    from joblib import effective_n_jobs
    from sklearn.base import clone

    if not hasattr(estimator, "_erasure_maths_for"):
        return None
    try:
        Y = np.asarray(to_numpy(Y))  # labels only; array-API labels may be on a device
    except (TypeError, ValueError, RuntimeError):
        return None
    if Y.ndim != 2 or Y.shape[1] == 0:
        return None
    probe = clone(estimator).set_params(memory_budget=None, verbose=0)

    def together(probe):
        outputs = [check_memory_budget(probe, X, column) for column in Y.T]
        if any(output is None for output in outputs):
            return None
        stored = sum(output.stored_bytes for output in outputs)
        building = max(o.fit_peak_bytes - o.stored_bytes for o in outputs)
        concurrent = max(1, min(int(effective_n_jobs(n_jobs)), len(outputs)))
        return MemoryEstimate(
            structure=f"{len(outputs)} outputs, each {outputs[0].structure}",
            params={"estimator__" + k: v for k, v in outputs[0].params.items()},
            stored_bytes=stored,
            fit_peak_bytes=stored + concurrent * building,
            request_peak_bytes=sum(output.request_peak_bytes for output in outputs),
            dtype=outputs[0].dtype,
        )

    estimate = together(probe)
    memory_budget = getattr(estimator, "memory_budget", "auto")
    budget = resolve_budget(memory_budget)
    if estimate is None or budget is None or estimate.peak_bytes <= budget:
        return estimate
    options = []
    size, fitting = 1, None
    while size < estimate.stored_bytes:  # a generous bound on the block size
        candidate = together(clone(probe).set_params(block_size=size))
        if candidate is None or candidate.peak_bytes > budget:
            break
        fitting, size = candidate, 2 * size
    if fitting is not None:
        options.append(fitting)
    if estimate.dtype == np.float64 and estimate.peak_bytes // 2 <= budget:
        # every array of the state is in the data's dtype: float32 halves it
        options.append(
            MemoryEstimate(
                structure=estimate.structure,
                params=estimate.params,
                stored_bytes=estimate.stored_bytes // 2,
                fit_peak_bytes=estimate.fit_peak_bytes // 2,
                request_peak_bytes=estimate.request_peak_bytes // 2,
                dtype=np.dtype(np.float32),
            )
        )
    raise CurvatureMemoryError(
        _message(estimator, [estimate], options, budget, memory_budget).replace(
            type(estimator).__name__, "ErasableMultiOutputClassifier", 1
        )
    )
