"""The batched request path of the multi-output wrapper.

In the paper's multi-attribute setting every output is a binary
:class:`~sklearn_ssse.ErasableLogisticRegression` with one dense curvature block
over the same rows. A request then does the same small computation for every
output; here it is done for all outputs at once:

- the request is validated once (rows, weights, duplicates, norms), the labels,
  counts and stored parameters of every output by array comparisons;
- one GEMM ``X̃ Θ*ᵀ`` gives every output's probabilities at its fit point; the
  gradients ``(n_outputs, P)`` and curvature factors ``U`` ``(n_outputs, P, k)``
  follow by broadcasting;
- the step and the Woodbury downdate run on the stacked inverses
  (:class:`~sklearn_ssse._stacked.InverseStack`): one batched product, one batched
  Cholesky of the ``k × k`` capacitances, one batched solve, lazy factors;
- the certificates are computed together
  (:func:`~sklearn_ssse.certificate.stacked_request_certificates`), the outputs
  sharing one downdated Gram;
- each output gets its new state (its curvature a
  :class:`~sklearn_ssse._stacked.StackedBlockInverse` slice of the new stack),
  its record and coefficients, as the per-output path would give them.

Anything outside that case, and any request this path would refuse (a bad label,
too many rows, a numerical failure), returns ``None``: the wrapper then runs its
per-output path, which raises the per-output error. Nothing is modified here; the
wrapper publishes the returned sub-estimators at once.
"""

import numpy as np
from sklearn import get_config
from sklearn.utils._param_validation import validate_parameter_constraints

from ._compat import _check_sample_weight
from ._linalg import SPAN_MAX_ROWS
from ._logistic_maths import stacked_binary_terms
from ._stacked import InverseStack, StackedBlockInverse
from ._state import (
    STATE_FORMAT_VERSION,
    RequestRecord,
    _library_version,
    append_record,
    check_request_id,
    new_state_id,
    utc_now,
)
from .base import _row_norms
from .certificate import (
    distance_bound,
    request_certificate,
    stacked_request_certificates,
    uncertified,
)
from .linear_model import ErasableLogisticRegression

__all__ = ["batched_forget", "fold_outputs", "stack_outputs"]


def _one_dense_block(state):
    """Whether ``state`` holds one dense NumPy block (plain, lazy or a stack's
    slice), asking the curvature's declared capabilities."""
    curvature = state.curvature
    if (
        getattr(curvature, "structure", None) != "blocks"
        or len(curvature.bounds) != 1
        or curvature.bounds[0][1] <= 1
    ):
        return False
    stack = _stack_of(curvature)
    if stack is not None:
        return isinstance(stack.base, np.ndarray)
    # The stored array itself, without materialising a lazy block's inverse.
    stored = getattr(curvature, "bases", None)
    if stored is None:
        stored = curvature.inverses
    return len(stored) == 1 and type(stored[0]) is np.ndarray and stored[0].ndim == 2


def _stack_of(curvature):
    """The :class:`InverseStack` ``curvature`` is a slice of, or ``None``."""
    stack = getattr(curvature, "stack", None)
    return stack if isinstance(stack, InverseStack) else None


def _stackable(estimators):
    """The outputs' states if they can share one stack, else ``None``."""
    if not estimators or not all(
        type(est) is ErasableLogisticRegression for est in estimators
    ):
        return None
    states = []
    for est in estimators:
        state = est.__dict__.get("erasure_state_")
        if (
            state is None
            or getattr(state, "format_version", None) != STATE_FORMAT_VERSION
            or getattr(est, "curvature_structure_", "blocks") != "blocks"
            or not _one_dense_block(state)  # NumPy state (not the array API)
            or type(est.classes_) is not np.ndarray
            or est.classes_.shape[0] != 2
        ):
            return None
        states.append(state)
    first = states[0].curvature
    if any(
        s.curvature.dtype != first.dtype or s.curvature.bounds != first.bounds
        for s in states
    ):
        return None
    return states


def _existing_stack(states):
    """The stack the outputs' curvatures are the slices of, in order, or ``None``."""
    stack = _stack_of(states[0].curvature)
    if stack is None or stack.n_outputs != len(states):
        return None
    for o, state in enumerate(states):
        c = state.curvature
        if _stack_of(c) is not stack or c.index != o:
            return None
    return stack


def _current_stack(states):
    """The stack of the outputs' inverses: theirs, or a new one (a copy)."""
    stack = _existing_stack(states)
    if stack is None:
        stack = InverseStack.from_inverses([s.curvature.inverses[0] for s in states])
    return stack


def stack_outputs(estimators):
    """Put the outputs' inverses in one stack (at the end of ``fit``).

    The sub-estimators' states are replaced in place by states whose curvature is
    a slice of the stack (the same matrices), one output at a time so that each
    output's own array is freed as soon as it is copied: the peak memory is the
    stack plus one block. Returns whether it was done.
    """
    states = _stackable(estimators)
    if states is None:
        return False
    if _existing_stack(states) is None:
        first = states[0].curvature
        size = first.n_params
        stack = InverseStack(np.empty((len(states), size, size), dtype=first.dtype))
        for o, est in enumerate(estimators):
            stack.base[o] = states[o].curvature.inverses[0]
            states[o] = states[o].replace(curvature=StackedBlockInverse(stack, o))
            est.__dict__["erasure_state_"] = states[o]
    # Outputs trained on the same rows with the same weights have the same
    # certificate Gram: one array shared by all (memory, pickles, requests).
    certs = [state.certificate_state for state in states]
    gram = None if certs[0] is None else certs[0].gram
    if gram is not None and all(
        c is not None
        and c.gram is not None
        and (c.gram is gram or np.array_equal(c.gram, gram))
        for c in certs
    ):
        diagonal = certs[0].gram_diagonal
        certs = [c.replace(gram=gram, gram_diagonal=diagonal) for c in certs]
    for est, state, cert in zip(estimators, states, certs):
        if state.certificate_state is not cert:
            est.__dict__["erasure_state_"] = state.replace(certificate_state=cert)
    return True


def fold_outputs(estimators):
    """Fold the lazy factors of the outputs' stack into its base, in place.

    Called before the wrapper is pickled or copied, so that the copy and the
    model hold the same (folded) state and no pickle holds the factors, which
    carry the directions of recently forgotten rows.
    """
    inverses = [
        getattr(est.__dict__.get("erasure_state_"), "curvature", None)
        for est in estimators
    ]
    stacks = {id(_stack_of(inv)): _stack_of(inv) for inv in inverses}
    stacks.pop(id(None), None)
    # The outputs' certificates share one Gram and its pending rows: fold them
    # once for all (each state would otherwise fold, and pickle, its own copy).
    folded_certs = {}
    for est in estimators:
        state = est.__dict__.get("erasure_state_")
        cert = getattr(state, "certificate_state", None)
        if cert is None or getattr(cert, "gram_removed", None) is None:
            continue
        key = (id(cert.gram), id(cert.gram_removed))
        if key not in folded_certs:
            folded_certs[key] = cert.folded()
        shared = folded_certs[key]
        est.__dict__["erasure_state_"] = state.replace(
            certificate_state=cert.replace(
                gram=shared.gram, gram_removed=None, gram_norm=shared.gram_norm
            )
        )
    for stack in stacks.values():
        if stack.rank == 0:
            continue
        folded = stack.folded()
        for est, inv in zip(estimators, inverses):
            if _stack_of(inv) is stack:
                state = est.__dict__["erasure_state_"]
                est.__dict__["erasure_state_"] = state.replace(
                    curvature=StackedBlockInverse(folded, inv.index)
                )


def _labels(Y, classes):
    """Class indices ``(k, n_outputs)`` of ``Y`` for binary outputs, or ``None``."""
    if Y.dtype.kind not in "biufUS" or classes.dtype.kind not in "biufUS":
        return None
    if (Y.dtype.kind in "US") != (classes.dtype.kind in "US"):
        return None
    negative = Y == classes[:, 0]
    positive = Y == classes[:, 1]
    if not np.all(negative | positive):
        return None
    return positive.astype(np.intp)


def _validated_rows(X, sample_weight, est, dtype):
    """``(X, sample_weight)`` for the batched path, or ``None`` to let the
    per-output path validate (and raise)."""
    if type(X) is not np.ndarray or X.ndim != 2 or X.dtype.kind != "f":
        return None
    if X.shape[1] != getattr(est, "n_features_in_", None) or hasattr(
        est, "feature_names_in_"
    ):
        return None
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        return None
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0], dtype=dtype)
    else:
        try:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=dtype, allow_all_zero_weights=True
            )
        except ValueError:
            return None
    if not np.all(sample_weight > 0):
        return None
    return X, sample_weight


def _has_duplicates(X, sample_weight):
    """Whether two rows (values and weight) are equal (then the per-output path
    decides, with each output's labels)."""
    rows = np.column_stack([X + X.dtype.type(0.0), sample_weight])
    plain = rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize)))[:, 0]
    return np.unique(plain).shape[0] < rows.shape[0]


def _replaced(state, **changes):
    """``state.replace(**changes)`` for a frozen dataclass without ``__post_init__``
    (``ErasureState``, ``CertificateState``), without re-running ``__init__``:
    40 outputs per request make ``dataclasses.replace`` a measurable cost."""
    unknown = changes.keys() - state.__dataclass_fields__.keys()
    if unknown:
        raise TypeError(f"unknown fields {sorted(unknown)}")
    new = object.__new__(type(state))
    new.__dict__.update(state.__dict__)
    new.__dict__.update(changes)
    return new


def _same(a, b):
    """``a == b`` for parameter dicts, ``False`` where it cannot be decided."""
    try:
        return bool(a is b or a == b)
    except (TypeError, ValueError):
        return False


def _output_error(index, exc):
    try:
        return type(exc)(f"output {index}: {exc}")
    except Exception:
        return ValueError(f"output {index}: {exc}")


def batched_forget(
    estimators, works, params, X, Y, sample_weight, *, rows_checked, request_id=None
):
    """Every output's updated sub-estimator after the request, or ``None``.

    Parameters
    ----------
    estimators : list of estimators
        The published sub-estimators (not modified).
    works : list of estimators
        Shallow copies of them carrying the request's parameters; the updated
        attributes are installed on these, which are returned.
    params : dict
        The request's parameters (read from the wrapper's ``estimator``).
    X : array-like of shape (k, n_features)
    Y : ndarray of shape (k, n_outputs)
    sample_weight : array-like of shape (k,) or None
    rows_checked : bool
        The rows were checked against a ledger (duplicates are allowed).
    request_id : str or None
        The caller's identifier of the request, for the records (checked by the
        caller).

    Returns
    -------
    list of estimators or None
        ``None`` when the batched path does not apply or would refuse the
        request: the per-output path then decides.

    Raises
    ------
    RefitRecommendedError
        Past ``certificate_budget`` with ``on_budget="raise"`` (naming the output).
    """
    k = Y.shape[0]
    states = _stackable(estimators)
    if states is None or k == 0:
        return None
    check_request_id(request_id, states[0].records)
    work = works[0]
    if not get_config()["skip_parameter_validation"]:
        # The request's parameters (the others were validated at fit and are
        # checked against the stored state below).
        constraints = type(work)._parameter_constraints
        names = [k for k in params if k in constraints]
        try:
            validate_parameter_constraints(
                {k: constraints[k] for k in names},
                {k: getattr(work, k) for k in names},
                caller_name=type(work).__name__,
            )
        except ValueError:
            return None
    if work.linearization != "fit" or work._l1_share() != 0:
        return None
    dtype = states[0].curvature.dtype
    n_params = states[0].curvature.n_params
    if k > n_params:  # Woodbury no longer pays: the per-output path re-solves
        return None
    # -- validation: once for the rows, by array comparisons for the outputs --
    # Every output must still have the curvature parameters of its fit, and all
    # the same ones: then they share C, the penalty and the maths.
    used = states[0].curvature_params
    n_features = estimators[0].n_features_in_
    for est, w, state in zip(estimators, works, states):
        if state.data_diagonal is None or state.class_gradient_sums is not None:
            return None
        if not (
            _same(state.curvature_params, used)
            and _same(w._curvature_params(), used)
            and est.n_features_in_ == n_features
        ):
            return None
    maths = work._erasure_maths()
    if maths.width != n_params:
        return None
    # The published parameters must equal the stored ones (as each output checks).
    try:
        coef = np.concatenate([est.coef_ for est in estimators])
        intercept = np.concatenate([est.intercept_ for est in estimators])
    except (TypeError, ValueError):
        return None
    if type(coef) is not np.ndarray or coef.shape != (len(estimators), n_features):
        return None
    theta = np.array([state.coefficients for state in states])
    if maths.fit_intercept:
        column = (intercept[:, None] / maths.intercept_scaling).astype(coef.dtype)
        published = np.hstack([coef, column])
    else:
        published = coef
    if published.shape != theta.shape or not np.array_equal(published, theta):
        return None
    rows = _validated_rows(X, sample_weight, estimators[0], dtype)
    if rows is None:
        return None
    X, sample_weight = rows
    classes = np.array([est.classes_ for est in estimators])
    labels = _labels(Y, classes)
    if labels is None:
        return None
    n_outputs = len(estimators)
    counts = np.array([state.class_counts for state in states])
    positives = labels.sum(axis=0)
    requested = np.column_stack([k - positives, positives])
    if np.any(requested > counts) or np.any(requested.sum(1) == counts.sum(1)):
        return None
    remaining = counts - requested
    if work._penalty_and_l1_ratio()[0] is None:
        try:
            for w, n_left in zip(works, remaining.sum(1)):
                w._check_remaining_rows(int(n_left))
        except ValueError:
            return None
    bound = min(state.row_norm_bound for state in states)
    if not np.all(_row_norms(X) <= bound):
        return None
    if not rows_checked and k > 1 and _has_duplicates(X, sample_weight):
        return None

    # -- each output's gradient and curvature factor at its fit point --
    kind = work._curvature_kind()
    C = float(work._objective_scaling()[0])
    strong_convexity = work._strong_convexity()
    points = np.array([state.point for state in states])
    class_weight = np.array([state.fit_class_weight for state in states])
    Xt = maths._augment(X)
    Xt64 = Xt.astype(np.float64, copy=False)
    residuals, scales = stacked_binary_terms(
        Xt64, labels, points.astype(np.float64), kind
    )
    row_weights = (
        sample_weight.astype(np.float64)[:, None]
        * class_weight[np.arange(n_outputs), labels]
    )  # (k, n_outputs): w_i · class weight of its label
    fit_weights = C * row_weights
    gradient = np.array([state.residual_gradient for state in states], np.float64)
    carried = bool(np.any(gradient))  # the fit's residual, before any request
    # gradient_o = residual_o + X̃ᵀ c[:, o]: c the rows' coefficients.
    c = -(fit_weights * residuals)
    a = np.sqrt(fit_weights) * scales  # U_o = X̃ᵀ diag(a[:, o])
    moved = theta.astype(np.float64) - points
    if np.any(moved):  # linearization="fit": move the gradients to θ by M
        c -= a * a * (Xt64 @ moved.T)
    gradient += c.T @ Xt64
    removed_diagonal = (a * a).T @ (Xt64 * Xt64)
    data_diagonal = np.array([state.data_diagonal for state in states])
    new_diagonal = data_diagonal - removed_diagonal
    tolerance = np.sqrt(np.finfo(dtype).eps) * (data_diagonal + removed_diagonal)
    if np.any(new_diagonal < -tolerance):
        return None
    new_diagonal = np.maximum(new_diagonal, 0.0)
    gradient = gradient.astype(dtype)
    U = np.multiply(Xt.T[None, :, :], a.T[:, None, :], dtype=dtype)

    # -- the step and the downdate, on the stacked inverses --
    stack = _current_stack(states)
    # Without a carried residual the gradients lie in the rows' span: the pass
    # over the stack takes the k rows alone (not k + 1 columns per output).
    span = None if carried or k > SPAN_MAX_ROWS else (Xt.T, a.T, c.T)
    try:
        new_stack, old_applied, new_applied = stack.downdated_and_applied(
            U, gradient, span=span
        )
    except np.linalg.LinAlgError:
        return None
    leave_out = bool(work.leave_out)
    applied = new_applied if leave_out else old_applied
    scale = float(work.forget_scale)
    theta_new = (theta + (-scale * applied).astype(dtype)).astype(dtype)
    if not np.all(np.isfinite(theta_new)):
        return None
    step_norms = np.linalg.norm(theta_new - theta, axis=1)

    # -- certificates --
    certs = [state.certificate_state for state in states]
    certificates = [None] * n_outputs
    new_certs = list(certs)
    complete = remaining.min(axis=1) > 0
    live = [o for o in range(n_outputs) if certs[o] is not None and complete[o]]
    for o in range(n_outputs):
        if certs[o] is not None and not complete[o]:
            certificates[o], new_certs[o] = uncertified(
                certs[o],
                "a class lost all its rows: the remaining objective has fewer "
                "classes than the certified one",
            )
    if live:
        removed_hessian = None
        if not leave_out:

            def removed_hessian(S, U=U[live]):
                SU = np.matmul(U.transpose(0, 2, 1), S[:, :, None])
                return np.matmul(U, SU)[:, :, 0]

        shared = None
        if np.all(fit_weights[:, live] == fit_weights[:, live[:1]]):
            shared = stacked_request_certificates(
                [certs[o] for o in live],
                maths,
                theta=theta[live],
                theta_new=theta_new[live],
                point=points[live],
                gradient=gradient[live],
                solved=applied[live],
                forget_scale=scale,
                removed_hessian=removed_hessian,
                X=X,
                removed_weights=fit_weights[:, live[0]],
            )
        for j, o in enumerate(live):
            if shared is not None:
                certificates[o], new_certs[o] = shared[j]
            else:
                certificates[o], new_certs[o] = request_certificate(
                    certs[o],
                    maths,
                    theta=theta[o],
                    theta_new=theta_new[o],
                    point=points[o],
                    gradient=gradient[o],
                    solved=applied[o],
                    forget_scale=scale,
                    removed_hessian=None
                    if leave_out
                    else (lambda v, U_o=U[o]: U_o @ (U_o.T @ v)),
                    X=X,
                    removed_weights=fit_weights[:, o],
                )
    for certificate in certificates:
        if certificate is not None:
            certificate["distance_bound"] = distance_bound(
                certificate["cumulative_gradient_bound"], strong_convexity
            )

    # -- records, states, coefficients --
    budget = getattr(work, "certificate_budget", None)
    when, version = utc_now(), _library_version()
    new_id = new_state_id()
    weight_sums = np.array([state.class_weight_sums for state in states])
    removed_weights = np.column_stack(
        [sample_weight @ (1 - labels), sample_weight @ labels]
    ).astype(np.float64)
    weight_sums = np.maximum(weight_sums - removed_weights, 0.0)
    coef = theta_new[:, :n_features].copy()
    if maths.fit_intercept:
        intercept = theta_new[:, -1] * dtype.type(maths.intercept_scaling)
    else:
        intercept = np.zeros(n_outputs, dtype=dtype)
    zeros = np.zeros_like(theta_new)
    slices = new_stack.slices()
    for o, (w, state) in enumerate(zip(works, states)):
        certificate = certificates[o]
        within = None
        if certificate is not None and budget is not None:
            relative = certificate.get("relative_gradient_bound")
            within = None if relative is None else bool(relative <= budget)
        guarantee = w._removal_guarantee(state, certificate)
        if guarantee is not None:  # opt-in certified removal (linear_model.py)
            certificate = {**(certificate or {}), "certified_removal": guarantee}
            within = False if not guarantee["holds"] else within
        record = RequestRecord(
            index=state.version + 1,
            time=when,
            n_rows=int(k),
            rows_per_class={},
            forget_scale=scale,
            curvature=str(kind),
            leave_out=leave_out,
            step_norm=float(step_norms[o]),
            certificate=certificate,
            n_params=int(n_params),
            n_remaining=int(remaining[o].sum()),
            budget=None if budget is None else float(budget),
            within_budget=within,
            library_version=version,
            request_id=request_id,
            state_id=new_id,
        )
        if within is False:
            try:
                w._over_budget(record)
            except ValueError as exc:
                raise _output_error(o, exc) from exc
        new_state = _replaced(
            state,
            state_id=new_id,
            parent_id=state.state_id,
            curvature=slices[o],
            data_diagonal=new_diagonal[o],
            residual_gradient=zeros[o],
            class_counts=remaining[o],
            class_weight_sums=weight_sums[o],
            class_gradient_sums=None,
            n_forgotten=state.n_forgotten + k,
            records=append_record(state.records, record),
            coefficients=theta_new[o],
            certificate_state=new_certs[o],
        )
        w.__dict__.update(
            coef_=coef[o : o + 1],
            intercept_=intercept[o : o + 1],
            erasure_state_=new_state,
        )
    return works
