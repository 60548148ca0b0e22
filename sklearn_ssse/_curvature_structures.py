"""Which representation stores a linear model's curvature, and building it.

``curvature_structure`` (an estimator parameter) names one:

- ``"blocks"``: :class:`~sklearn_ssse._curvature.BlockDiagonalInverse`, the dense
  inverse of each block (``block_size``); memory ``Σ_b d_b²``.
- ``"cg"``: :class:`~sklearn_ssse._curvature_cg.ConjugateGradientCurvature`, the
  exact ``M`` (not its inverse) in blocks over pairs of outputs, sparse for
  sparse data; ``M⁻¹`` by preconditioned CG. Same step as ``block_size=None`` up
  to CG's tolerance.
- ``"cg-class"``: the same with the curvature between different outputs (classes)
  dropped: ``n_outputs`` blocks instead of ``n_outputs (n_outputs + 1) / 2``.
- ``"cg-rows"`` (opt-in, never chosen by ``"auto"``):
  :class:`~sklearn_ssse._curvature_cg.RowCurvature`, the same ``M`` kept as the
  training rows and their weights (``M v = X̃ᵀ(V·(X̃ v))``): far faster to build
  and to apply, but **the model then contains the remaining training rows**.
- ``"auto"``: the first that fits the memory budget of
  :func:`structure_candidates`' list: ``"blocks"``, ``"cg"``, ``"cg-class"``,
  with ``"cg"`` first on sparse data whose dense blocks would be large; and
  ``"cg"`` with several classes becomes ``"cg-class"`` when a request on the
  pair blocks might cost about as much as the fit's solver or more
  (:func:`class_coupling_rule`). When none of these fits, ``"auto"`` does not
  refuse: it falls back to the most faithful approximation that fits
  (:func:`approximate_candidates`: ``"cg-class"``, then dense blocks of the
  largest power-of-two ``block_size``, down to the diagonal) and ``fit`` warns
  (:class:`~sklearn_ssse.exceptions.ApproximateCurvatureWarning`).
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import _num_samples

from ._curvature import block_bounds
from ._curvature_cg import (
    CONTRIBUTIONS_PER_CHUNK,
    PAIRS_BY_CONTRIBUTIONS,
    ConjugateGradientCurvature,
    RowCurvature,
    augment_rows,
)
from ._maths import row_chunks
from ._memory import (
    CHUNK_BYTES,
    MemoryEstimate,
    estimate_block_diagonal,
    resolve_budget,
)

__all__ = [
    "COSTLY_REQUEST_RATIO",
    "FALLBACK_MAX_BLOCK",
    "STRUCTURES",
    "approximate_candidates",
    "offers_approximations",
    "build_cg_curvature",
    "cg_estimate",
    "choose_structure",
    "class_coupling_rule",
    "request_cost_ratio",
    "select_structure",
    "structure_candidates",
]

STRUCTURES = ("auto", "blocks", "cg", "cg-class", "cg-rows")

# "auto" on sparse data prefers "cg" to dense blocks that store more bytes and
# at least as many as one block of this many coordinates (whose inversion takes
# about a second of one core): see :func:`structure_candidates`.
CG_PREFERENCE_MIN_BLOCK = 2048

# The largest block_size "auto" falls back to (approximate_candidates): inverting
# blocks of B coordinates costs about n_params · B² flops, seconds for 50 000
# features at 2 048 but many minutes at 16 384.
FALLBACK_MAX_BLOCK = CG_PREFERENCE_MIN_BLOCK

# The cost model of :func:`request_cost_ratio`. A request solves by CG to the
# default tolerance in about this many products (measured: 9–28 on TF-IDF text,
# 13 on images; see the README's scale tables) ...
TYPICAL_CG_PRODUCTS = 10
# ... and a solver's pass over one non-zero of X̃ per output (lbfgs with its line
# searches, the exp/log of every row) costs about as much as this many
# multiply-adds of a stored product (measured 5–8 on the docstring corpus).
SOLVER_PASS_COST = 7
# An estimate above this may be a request that costs as much as a refit or more:
# the model errs by up to about 2.5x either way (estimates 0.8 and 0.9 were
# one-row requests of 1.1x and 1.3-2.4x the refit on the docstring corpus).
# "auto" then drops the curvature between classes (:func:`class_coupling_rule`)
# and ``fit`` warns if the chosen structure is still above it.
COSTLY_REQUEST_RATIO = 0.5


def _augmented_nnz(X, fit_intercept):
    """Non-zeros of ``X̃`` (sparse ``X``), or ``None`` for dense data."""
    if not sp.issparse(X):
        return None
    return int(X.nnz) + int(fit_intercept) * X.shape[0]


def _pattern_bound(X, fit_intercept):
    """Upper bound of ``nnz(triu(X̃ᵀX̃))`` without forming it: ``Σ_i q_i (q_i+1)/2``."""
    if not sp.issparse(X):
        return None
    q = np.diff(sp.csr_matrix(X).indptr).astype(np.int64) + int(fit_intercept)
    return int(np.sum(q * (q + 1) // 2))


def cg_nbytes(maths, X, couple_outputs=True, dtype=None, rows=False):
    """Estimated bytes of the ``"cg"`` (or ``"cg-class"``; ``rows``:
    ``"cg-rows"``) structure for ``X``."""
    dtype = X.dtype if dtype is None else dtype
    if rows:
        nnz = _augmented_nnz(X, maths.fit_intercept)
        n_samples = _num_samples(X)
        return RowCurvature.estimate_nbytes(
            maths.n_params,
            dtype,
            n_outputs=maths.n_outputs,
            nnz=n_samples * maths.width if nnz is None else nnz,
            n_samples=n_samples,
            couple_outputs=couple_outputs,
            dense=nnz is None,
        )
    return ConjugateGradientCurvature.estimate_nbytes(
        maths.n_params,
        dtype,
        n_outputs=maths.n_outputs,
        pattern_nnz=_pattern_bound(X, maths.fit_intercept),
        couple_outputs=couple_outputs,
        gram=couple_outputs,  # the certificate's Gram, kept by "cg"
    )


def cg_estimate(maths, X, dtype, n_samples, couple_outputs=True, rows=False):
    """:class:`~sklearn_ssse._memory.MemoryEstimate` of ``"cg"`` / ``"cg-class"``
    (``rows``: ``"cg-rows"``).

    Pair blocks, sparse data: the build holds the pattern's product (both
    triangles, before ``triu``) and one pair's product at a time, with their
    indices; a request holds the old and new values. Pair blocks, dense data:
    the blocks and one chunk of rows' temporaries; a request holds the old and
    new blocks and factors. Rows (:class:`~sklearn_ssse._curvature_cg.RowCurvature`):
    the build holds the augmented rows, their squares (for the diagonal) and the
    per-row weights (``n × n_outputs²`` while they are computed); a request
    holds the old and new rows and their in-memory hashes.
    """
    itemsize = np.dtype(dtype).itemsize
    stored = cg_nbytes(maths, X, couple_outputs, dtype, rows=rows)
    n_out, width = maths.n_outputs, maths.width
    per_row_weights = int(n_samples) * n_out * n_out * itemsize
    vectors = 8 * maths.n_params * itemsize  # CG's vectors, gradients, step
    nnz = _augmented_nnz(X, maths.fit_intercept)
    n_pairs = n_out * (n_out + 1) // 2 if couple_outputs else n_out
    # value columns built together: the pairs, and "cg"'s certificate Gram
    n_columns = n_pairs + int(bool(couple_outputs) and not rows)
    if rows:
        nnz = int(n_samples) * width if nnz is None else nnz
        copies = 4 * nnz * (itemsize + 12)  # X̃, its squares, hashing's keys
        fit_peak = stored + copies + 3 * per_row_weights + vectors
        # CG's products hold two (n, n_outputs) temporaries
        request_peak = 2 * stored + vectors + 2 * int(n_samples) * n_out * itemsize
        request_peak += copies // 2  # the hashes of the stored rows
        kind = f"the {n_samples:,} training rows, M⁻¹ by CG"
    elif nnz is not None:
        pattern = min(_pattern_bound(X, maths.fit_intercept), width * (width + 1) // 2)
        # X̃ and its 0/1 copy; both triangles of a product and its triangle
        products = 2 * nnz * (itemsize + 4) + 6 * pattern * (itemsize + 4)
        if n_columns >= PAIRS_BY_CONTRIBUTIONS:  # then _pair_values: per entry of
            # X̃ its row, place and partners, the pairs' weights per row, and a
            # range's row products (indices, keys, positions, values, their
            # sparse matrix) and the pairs' sums over its pattern entries
            chunk = min(_pattern_bound(X, maths.fit_intercept), CONTRIBUTIONS_PER_CHUNK)
            pairing = 2 * nnz * (itemsize + 4) + 24 * nnz
            pairing += int(n_samples) * n_columns * itemsize
            pairing += chunk * (64 + 2 * itemsize) + 2 * chunk * n_columns * itemsize
            products = max(products, pairing)
        fit_peak = stored + products + 3 * per_row_weights + vectors
        request_peak = 2 * stored + vectors
        kind = f"{n_pairs} sparse pair blocks of {width:,} coordinates, M⁻¹ by CG"
    else:
        chunk = min(int(n_samples) * width * 3 * itemsize, 3 * CHUNK_BYTES)
        fit_peak = stored + chunk + 3 * per_row_weights + vectors
        request_peak = 2 * stored + vectors
        kind = f"{n_pairs} dense pair blocks of {width:,} coordinates, M⁻¹ by CG"
    name = "cg-rows" if rows else ("cg" if couple_outputs else "cg-class")
    return MemoryEstimate(
        structure=kind,
        params={"curvature_structure": name},
        stored_bytes=int(stored),
        fit_peak_bytes=int(fit_peak),
        request_peak_bytes=int(request_peak),
        dtype=np.dtype(dtype),
    )


def structure_candidates(structure, maths, X, dtype, n_samples, blocks, cg=True):
    """The structures ``fit`` may build, as memory estimates, in the order
    ``structure`` prefers them: the first that fits the budget is built
    (:func:`choose_structure`; ``check_memory_budget`` uses the same list).

    ``blocks`` is the estimate of the dense blocks (``block_size``); ``cg``:
    whether the ``"cg"`` structures are possible (not with mini-batch Fisher
    estimates or an L1 penalty's active set).

    ``"auto"`` on dense data: blocks, then ``"cg"``, then ``"cg-class"`` (the
    dense inverse makes requests cheapest where it fits). On sparse data it puts
    ``"cg"`` first when the blocks would store more bytes than it, and at least
    those of one block of ``CG_PREFERENCE_MIN_BLOCK`` coordinates: ``"cg"`` holds
    the same matrix (the dense block's step up to CG's tolerance), its build is
    a sparse product for the pattern and one pass over the rows' products for the
    class pairs' values where the blocks' costs ``Σ_b B_b³`` flops to
    invert (2 048 coordinates: about a second of one core; 4 600 text features:
    90 s measured on a busy core; 28 000: hours), and a request costs a dozen
    products with ``M`` where the blocks' costs ``O(Σ_b B_b² k)``.
    """
    if structure == "blocks" or not cg:
        return [blocks]
    if structure == "cg-rows":  # opt-in only: never chosen by "auto"
        return [cg_estimate(maths, X, dtype, n_samples, rows=True)]
    coupled = cg_estimate(maths, X, dtype, n_samples, couple_outputs=True)
    if structure == "cg":
        return [coupled]
    per_output = cg_estimate(maths, X, dtype, n_samples, couple_outputs=False)
    if structure == "cg-class":
        return [per_output]
    scalable = [coupled] + ([per_output] if maths.n_outputs > 1 else [])
    if (
        sp.issparse(X)
        and blocks.stored_bytes >= CG_PREFERENCE_MIN_BLOCK**2 * np.dtype(dtype).itemsize
        and coupled.stored_bytes <= blocks.stored_bytes
    ):
        return scalable + [blocks]
    return [blocks] + scalable


def approximate_candidates(
    maths, X, dtype, n_samples, primary, block_estimate, cg=True, max_block=None
):
    """The approximations ``"auto"`` falls back to when none of ``primary`` (the
    exact structures of :func:`structure_candidates`) fits, most faithful first.

    ``"cg-class"`` (when ``cg`` and not already in ``primary``: for a binary
    model the same ``M`` without the certificate's Gram, for several classes
    without the curvature between classes), then dense blocks of ``block_size``
    ``2^k`` for every power of two below ``max_block`` (the largest block of
    the primary dense blocks; ``maths.n_params`` when ``None``) and at most
    :data:`FALLBACK_MAX_BLOCK`, down to 1 (the diagonal). Larger blocks keep
    more of ``M``, but on text little more than the diagonal (distance to the
    refit 0.11, 0.135, 0.148 and 0.146 at 2 048, 512, 64 and 1, against 0.013
    exact, on a 10 000 × 5 000 Zipf corpus: ``benchmarks/results/corpus.md``).
    ``block_estimate(block_size)`` gives the dense blocks' estimate; each
    returned estimate's ``params`` name the structure and the block size.
    """
    names = {_structure_of(candidate) for candidate in primary}
    candidates = []
    if cg and "cg-class" not in names:
        candidates.append(cg_estimate(maths, X, dtype, n_samples, couple_outputs=False))
    largest = int(maths.n_params if max_block is None else max_block)
    size = 1
    while 2 * size < largest and 2 * size <= FALLBACK_MAX_BLOCK:
        size *= 2
    while size >= 1:
        if size < largest:
            estimate = block_estimate(size)
            params = {"curvature_structure": "blocks", "block_size": size}
            candidates.append(
                MemoryEstimate(
                    structure=estimate.structure
                    + (" (the diagonal)" if size == 1 else " (block-diagonal)"),
                    params=params,
                    stored_bytes=estimate.stored_bytes,
                    fit_peak_bytes=estimate.fit_peak_bytes,
                    request_peak_bytes=estimate.request_peak_bytes,
                    dtype=estimate.dtype,
                )
            )
        size //= 2
    return candidates


def offers_approximations(estimator):
    """Whether ``estimator._curvature_candidates`` takes ``approximations``."""
    import inspect

    method = getattr(estimator, "_curvature_candidates", None)
    if method is None:
        return False
    try:
        return "approximations" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def choose_structure(candidates, memory_budget="auto"):
    """The first of ``candidates`` (memory estimates) whose peak fits the budget,
    or ``None``."""
    budget = resolve_budget(memory_budget)
    for candidate in candidates:
        if budget is None or candidate.peak_bytes <= budget:
            return candidate
    return None


def _structure_of(estimate):
    return estimate.params.get("curvature_structure", "blocks")


def select_structure(
    structure,
    maths,
    X,
    bounds,
    memory_budget="auto",
    estimator=None,
    return_bounds=False,
):
    """The structure to build: ``structure`` itself unless it is ``"auto"``.

    ``bounds`` are the blocks ``"blocks"`` would store (from ``block_size``).
    With ``estimator`` (one with ``_curvature_candidates``, as
    :class:`~sklearn_ssse.ErasableLogisticRegression`), its candidates are
    used, the approximations ``"auto"`` falls back to included: the same list
    ``check_memory_budget`` checked before the solver, so that the check and
    the build agree. ``return_bounds``: return ``(structure, bounds)``, the
    bounds of the blocks to build (a fallback's ``block_size``, else
    ``bounds``).
    """
    if structure != "auto":
        return (structure, bounds) if return_bounds else structure
    n_classes = max(2, maths.n_outputs)
    if estimator is not None and hasattr(estimator, "_curvature_candidates"):
        extra = {"approximations": True} if offers_approximations(estimator) else {}
        candidates = estimator._curvature_candidates(
            maths, X.dtype, X.shape[0], n_classes, X=X, **extra
        )
    else:
        blocks = estimate_block_diagonal(
            bounds,
            X.dtype,
            n_samples=X.shape[0],
            n_classes=n_classes,
            max_request_rank=X.shape[0] * maths.n_outputs,
            params={"block_size": "bounds"},
        )
        candidates = structure_candidates(
            structure, maths, X, X.dtype, X.shape[0], blocks
        )
    chosen = choose_structure(candidates, memory_budget) or candidates[0]
    name = _structure_of(chosen)
    if not return_bounds:
        return name
    size = chosen.params.get("block_size")
    if name == "blocks" and "curvature_structure" in chosen.params:  # a fallback
        bounds = block_bounds(maths.n_params, size, maths.group_bounds())
    return name, bounds


def request_cost_ratio(curvature, X, n_outputs, n_iter, fit_intercept=True):
    """Estimated cost of a typical request over that of the solver's run in ``fit``.

    Operation counts, not timings (deterministic, the same on every machine): a
    request is :data:`TYPICAL_CG_PRODUCTS` products with the stored matrix
    (``curvature.product_cost`` multiply-adds each), the refit ``n_iter``
    iterations of two passes over the non-zeros of ``X̃`` per output, each entry
    weighted by :data:`SOLVER_PASS_COST`. On the docstring corpus it reads 0.8,
    3.9, 2.3, 6.5 and 0.9 where the measured one-row request took 1.1, 2.9, 6.0,
    9.6 and 1.3–2.4 times the refit (binary 5 356 and 27 868 features at C = 1
    and 10; 6 classes with the pair blocks and with the class blocks alone):
    right to within a factor of about 2.5 either way, so a request estimated
    above :data:`COSTLY_REQUEST_RATIO` may cost as much as a refit.

    Parameters
    ----------
    curvature : object with ``product_cost``
        The stored curvature (a ``"cg"`` structure).
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        The training rows.
    n_outputs : int
        Columns of the solver's parameter matrix (1 for binary).
    n_iter : int
        Iterations the solver took.
    fit_intercept : bool, default=True

    Returns
    -------
    float or None
        ``None`` when the curvature has no ``product_cost`` or ``n_iter`` is 0.
    """
    cost = getattr(curvature, "product_cost", None)
    if cost is None or not n_iter:
        return None
    return (
        TYPICAL_CG_PRODUCTS * cost / _solver_cost(X, n_outputs, n_iter, fit_intercept)
    )


def _solver_cost(X, n_outputs, n_iter, fit_intercept):
    """The solver's work in :func:`request_cost_ratio`'s units (at least 1)."""
    entries = _augmented_nnz(X, fit_intercept)
    if entries is None:
        entries = X.shape[0] * (X.shape[1] + int(fit_intercept))
    return max(SOLVER_PASS_COST * 2 * int(n_iter) * entries * int(n_outputs), 1)


def class_coupling_rule(X, n_outputs, n_iter, fit_intercept=True):
    """How ``"auto"`` decides to keep the curvature between classes in ``"cg"``.

    Returns the ``couple_outputs`` callable of
    :meth:`~sklearn_ssse._curvature_cg.ConjugateGradientCurvature.from_rows`:
    given the entries of one pair block (known once the sparse pattern is built,
    before any pair's values), it keeps the ``n_outputs (n_outputs + 1) / 2``
    pair blocks while a request on them is estimated
    (:func:`request_cost_ratio`'s model) to cost at most
    :data:`COSTLY_REQUEST_RATIO` times the fit's solver, and otherwise keeps only
    the ``n_outputs`` class blocks
    (``"cg-class"``): ``(n_outputs + 1) / 2`` times less memory and work per
    product, at a larger distance to the refit (0.103 against 0.025 on 6-class
    docstrings, 28 000 features; see ``docs/curvature.md``). A model whose
    requests would cost more than a refit even so still warns
    (:class:`~sklearn_ssse.exceptions.CostlyErasureWarning`).

    Parameters
    ----------
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        The training rows.
    n_outputs : int
        Columns of the solver's parameter matrix (the classes).
    n_iter : int
        Iterations the solver took.
    fit_intercept : bool, default=True

    Returns
    -------
    callable
        ``couple(pattern_nnz) -> bool``.
    """
    solver = _solver_cost(X, n_outputs, max(int(n_iter), 1), fit_intercept)
    # ConjugateGradientCurvature.product_cost with every pair kept: n_outputs²
    # columns over each block (both triangles of a sparse one).
    per_entry = 2 if sp.issparse(X) else 1

    def couple(pattern_nnz):
        cost = per_entry * n_outputs * n_outputs * int(pattern_nnz)
        return TYPICAL_CG_PRODUCTS * cost <= COSTLY_REQUEST_RATIO * solver

    return couple


def build_cg_curvature(
    maths,
    X,
    y,
    weights,
    theta,
    active,
    kind,
    C,
    damping,
    damped,
    structure,
    couple_outputs=None,
    certificate_gram=False,
):
    """Build the ``"cg"`` / ``"cg-class"`` curvature at ``theta``.

    Returns the :class:`ConjugateGradientCurvature`, the damping diagonal and the
    data term's diagonal, as
    ``ErasableMixin._fit_erasure_state`` does for blocks (floor
    ``√eps × mean diag`` of the data term, flat directions at that scale).
    ``couple_outputs`` (a callable of :func:`class_coupling_rule`) lets ``"cg"``
    drop the blocks between classes once the pattern is known; the built
    structure's ``pairs`` say which it kept. ``certificate_gram``: ``"cg"``
    also keeps the certificate's Gram over its pattern (when it keeps every
    pair: the exact Hessian), built in the same pass.
    """
    if not hasattr(maths, "kronecker_weights"):
        raise ValueError(
            f"curvature_structure={structure!r} needs a linear model; "
            "use curvature_structure='blocks'"
        )

    def augment(rows):
        return augment_rows(rows, maths.fit_intercept, maths.intercept_scaling)

    scale_rows = (C * weights).astype(X.dtype)

    def row_weights(rows):
        V = maths.kronecker_weights(X[rows], y[rows], theta, active, kind)
        return (V * scale_rows[rows, None, None]).astype(X.dtype, copy=False)

    def prior_fn(diagonal):
        scale = diagonal.mean() if diagonal.size and diagonal.mean() > 0 else 1.0
        floor = np.sqrt(np.finfo(X.dtype).eps) * scale
        return damping * damped + floor, scale

    null = maths.null_directions()
    null = null[:, np.isclose(np.linalg.norm(null, axis=0), 1.0)]
    row_chunk = None
    if not sp.issparse(X):
        row_chunk = next(
            iter(row_chunks(X.shape[0], 3 * X.dtype.itemsize * maths.width))
        )
        row_chunk = row_chunk.stop - row_chunk.start
    kept = RowCurvature if structure == "cg-rows" else ConjugateGradientCurvature
    # The rows kept: their objective weights too, for the certificate's Gram.
    keep_gram = structure == "cg-rows" or (structure == "cg" and certificate_gram)
    extra = {"gram_weights": C * weights} if keep_gram else {}
    inverse = kept.from_rows(
        X,
        row_weights,
        prior_fn,
        null,
        couple_outputs=(
            couple_outputs
            if couple_outputs is not None and structure == "cg"
            else structure in ("cg", "cg-rows")
        ),
        row_chunk=row_chunk,
        augment=augment,
        **extra,
    )
    data_diagonal = inverse.data_term_diagonal()
    return inverse, inverse.prior, data_diagonal.astype(np.float64)


def downdate_rows(maths, X, y, point, active, kind, fit_weights):
    """``(X̃_S, V_S)`` of a request's rows, for ``downdated(rows=...)``."""
    V = maths.kronecker_weights(X, y, point, active, kind)
    V = V * fit_weights[:, None, None]
    return augment_rows(X, maths.fit_intercept, maths.intercept_scaling), V
