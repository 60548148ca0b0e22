"""Which linearisation point keeps the soak and gives no erased row back? (issue 22)

With ``linearization="fit"`` the state keeps the fitted parameters ``θ*`` next to
the published ``θ`` and the downdated curvature ``M``; ``M (θ* − θ)`` is then the
erased rows' summed gradient (for one row: the row itself). This benchmark
prototypes designs of the linearisation point *without editing the engine* (by
re-writing the published state between requests) and measures, in one run:

1. **Soak** (the protocol of ``bench_soak.py``): 50 disjoint random requests of 1 %
   of the rows, standardised features, ``C = 1``, the Hessian, ``TIGHT`` solver;
   test accuracy after 1 / 10 / 25 / 50 requests against the refit's, and the
   relative distance ``‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖``.
2. **Attacks** on a model fitted with ``tol=1e-8``, 10 rows, each erased by itself:

   - *point*: ``v = M (point − θ) − r`` from the pickle alone (``r`` the stored
     residual gradient); the row is read off ``v`` (its best rank-1 factor,
     ``(n_outputs, width)``); mean ``|cos(x̂, x)|``, and how often the class of the
     largest loading is the erased row's label;
   - *strong* (binary only): an adversary who knows the remaining rows solves
     ``M − λP = C Σ_rem s_l x̃_l x̃_lᵀ`` for the ``s_l``, hence the logits at the
     point where ``M`` was built, hence that point, then runs the point attack;
   - *residue* (oracle): the row is erased as the second request (after a random
     1 % one); top eigenvector of the class-traced ``M − M_refit``; with
     ``‖M − M_fit-design‖ / ‖M_fit-design − M_refit‖`` (the re-base's residue
     against the natural difference).

   References: the same attacks on the state of a refit without the row, and
   ``|cos|`` between the row and another random training row (data-shaped chance).

Candidates: (a) ``"fit"`` (the default), (b) ``"current"``, (c) re-base (the stored
point becomes the published ``θ`` after every request), (d) re-base carrying the
quadratic model's predicted residual ``ρ = C Σ_S K_i(θ_k) (θ_k − θ_{k+1})`` (zero at
``leave_out=True``, ``ε = 1``: identical to (c) there, so measured at
``leave_out=False``), (e) a point perturbed once at fit, ``θ* + σ ξ`` with
``ξ ~ N(0, M⁻¹)``.

Run ``python benchmarks/bench_linearization_privacy.py`` (the fits dominate: 17
minutes on two cores shared at a load of about 10); writes
``benchmarks/results/linearization_privacy.md``.
"""

import copy
import dataclasses
import datetime
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasureError,
    RefitRecommendedWarning,
)

RESULTS = Path(__file__).parent / "results" / "linearization_privacy.md"
TIGHT = dict(tol=1e-10, max_iter=10000)  # as bench_soak.py
ATTACK_FIT = dict(tol=1e-8, max_iter=10000)
CHECKPOINTS = (1, 10, 25, 50)
N_ATTACKED = 10


@dataclasses.dataclass(frozen=True)
class Design:
    linearization: str = "fit"
    rebase: bool = False
    carry: bool = False  # (d): carry ρ_k in the residual gradient
    sigma: float = 0.0  # (e): perturbed point
    leave_out: bool = True


DESIGNS = {
    "(a) fit (default)": Design(),
    "(b) current": Design(linearization="current"),
    "(c) re-base": Design(rebase=True),
    "(c) re-base, leave_out=False": Design(rebase=True, leave_out=False),
    "(d) re-base + ρ, leave_out=False": Design(
        rebase=True, carry=True, leave_out=False
    ),
    "(e) perturbed point, σ = 0.1": Design(sigma=0.1),
    "(e) perturbed point, σ = 0.3": Design(sigma=0.3),
}


def _letters_like():
    return make_classification(
        n_samples=6000,
        n_features=16,
        n_informative=12,
        n_redundant=2,
        n_classes=26,
        n_clusters_per_class=1,
        class_sep=1.5,
        random_state=0,
    )


DATASETS = {
    "breast_cancer (binary)": lambda: load_breast_cancer(return_X_y=True),
    "digits (10 classes)": lambda: load_digits(return_X_y=True),
    "synthetic 26 classes": _letters_like,
}
ATTACK_DATASETS = ("breast_cancer (binary)", "digits (10 classes)")


def _split(load):
    X, y = load()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


# -- the prototypes: the engine untouched, the state re-written between requests --
def dense_curvature(model):
    """The stored ``M`` (not its inverse), dense."""
    return np.linalg.inv(model.erasure_state_.curvature.to_dense())


def prepare(model, design, seed=0):
    """Fit-time part of a design (in place): (e) perturbs the stored point."""
    model.set_params(linearization=design.linearization, leave_out=design.leave_out)
    if design.sigma:
        state = model.erasure_state_
        inverse = state.curvature.to_dense()
        root = np.linalg.cholesky((inverse + inverse.T) / 2)
        xi = root @ np.random.default_rng(seed).standard_normal(inverse.shape[0])
        point = state.point + design.sigma * xi.astype(state.point.dtype)
        model.erasure_state_ = state.replace(point=point)
    return model


def forget(model, X, y, design):
    """One request under ``design`` (in place)."""
    before = model.erasure_state_
    model.partial_forget(X, y)
    if not design.rebase:
        return model
    state = model.erasure_state_
    theta = state.coefficients
    residual = np.zeros_like(state.residual_gradient)
    if design.carry:  # ∇Q_{k+1}(θ_{k+1}) = (M_k − M_{k+1}) M_k⁻¹ ĝ
        residual = model._curvature_product(
            X,
            y,
            np.ones(len(y)),
            before,
            before.fit_class_weight,
            (before.coefficients - theta) / model.forget_scale,
        ).astype(theta.dtype)
    certificate = state.certificate_state
    if certificate is not None:  # (θ − θ*) G would give θ* back
        certificate = dataclasses.replace(certificate, gram_drift=None, drift_at=None)
    model.erasure_state_ = state.replace(
        point=theta.copy(), residual_gradient=residual, certificate_state=certificate
    )
    return model


def refit(fitted, X, y):
    """The model fitted on ``X, y``: Newton's method warm-started at ``fitted``'s θ
    (the same optimum as a cold start, to below the solver's tolerance, in two or
    three iterations instead of a hundred)."""
    model = copy.deepcopy(fitted).set_params(warm_start=True, solver="newton-cholesky")
    return model.fit(X, y)


# -- soak ---------------------------------------------------------------------------
def soak(name, load, rows):
    X, X_test, y, y_test = _split(load)
    n_request = max(1, len(y) // 100)
    order = np.random.default_rng(0).permutation(len(y))
    requests = order[: n_request * CHECKPOINTS[-1]].reshape(CHECKPOINTS[-1], -1)
    fitted = ErasableLogisticRegression(**TIGHT).fit(X, y)
    refits, last = {}, fitted
    for k in CHECKPOINTS:
        keep = np.setdiff1d(np.arange(len(y)), requests[:k].ravel())
        refits[k] = last = refit(last, X[keep], y[keep])
    theta_star = fitted._get_flat_params()
    for label, design in DESIGNS.items():
        model = prepare(copy.deepcopy(fitted), design)
        accuracy, distance, status = {}, {}, "ok"
        for k, request in enumerate(requests, start=1):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    forget(model, X[request], y[request], design)
            except ErasureError as exc:
                status = f"refused at {k}: {type(exc).__name__}"
                break
            if k in CHECKPOINTS:
                theta_refit = refits[k]._get_flat_params()
                accuracy[k] = model.score(X_test, y_test)
                distance[k] = np.linalg.norm(
                    model._get_flat_params() - theta_refit
                ) / np.linalg.norm(theta_star - theta_refit)
        refit_accuracy = refits[CHECKPOINTS[-1]].score(X_test, y_test)
        rows.append((name, label, accuracy, refit_accuracy, distance, status))
        print(name, label, accuracy, distance, status, flush=True)


# -- attacks ------------------------------------------------------------------------
def read_row(vector, shape):
    """Best rank-1 reading of a gradient-shaped vector: ``(x̂, class loadings)``."""
    V = vector.reshape(shape)
    if not np.any(V):
        return None, None
    U, _, Vt = np.linalg.svd(V, full_matrices=False)
    return Vt[0, :-1], U[:, 0]


def cosine(a, b):
    if a is None:
        return 0.0
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def point_attack(model, x, label):
    """(|cos|, label guessed) from ``M (point − θ) − r``."""
    state = model.erasure_state_
    maths = model._erasure_maths()
    theta = model._get_flat_params()
    v = dense_curvature(model) @ (state.point - theta) - state.residual_gradient
    row, loadings = read_row(v, (maths.n_outputs, maths.width))
    if loadings is None:
        guessed = False
    elif maths.n_outputs == 1:  # −C (p − y) on the intercept: positive for y = 1
        guessed = int(v[-1] > 0) == label
    else:  # p − e_y: the largest loading is the label's
        guessed = int(np.argmax(np.abs(loadings))) == label
    return cosine(row, x), guessed


def strong_point(model, X_rem):
    """Binary: the point where ``M`` was built, from ``M`` and the remaining rows."""
    state = model.erasure_state_
    C = model.C
    A = np.column_stack([X_rem, np.ones(len(X_rem))])
    data = dense_curvature(model) - np.diag(state.prior)
    upper = np.triu_indices(A.shape[1])
    design = (A[:, upper[0]] * A[:, upper[1]]).T * C  # one column per row
    s = np.linalg.lstsq(design, data[upper], rcond=None)[0]
    good = s > 1e-6  # the logit of a saturated row is lost in rounding
    s = np.clip(s[good], 1e-300, 0.25)
    p = 0.5 * (1 + np.sqrt(np.maximum(1 - 4 * s, 0)))  # p ≥ ½ ...
    z = np.log(p / (1 - p))
    z *= np.sign(A[good] @ model._get_flat_params())  # ... sign from the published θ
    return np.linalg.lstsq(A[good], z, rcond=None)[0]


def strong_attack(model, X_rem, x):
    theta = model._get_flat_params()
    v = dense_curvature(model) @ (strong_point(model, X_rem) - theta)
    return cosine(v[:-1], x)


def drift_attack(model, x):
    """|cos| of the row read off ``M (θ* − θ)``, ``θ − θ*`` from the certificate's
    ``gram_drift = (θ − θ*) G`` and its Gram (as pickled: removed rows folded)."""
    cert = model.erasure_state_.certificate_state
    if cert is None or cert.gram is None or cert.gram_drift is None:
        return 0.0
    G = cert.gram
    if cert.gram_removed is not None and len(cert.gram_removed):
        G = G - cert.gram_removed.T @ cert.gram_removed
    drift = np.linalg.lstsq(G, np.asarray(cert.gram_drift).T, rcond=None)[0].T
    maths = model._erasure_maths()
    v = dense_curvature(model) @ (-drift.ravel())
    return cosine(read_row(v, (maths.n_outputs, maths.width))[0], x)


def published_attack(model, refit, x):
    """|cos| of the row read off ``M_refit (θ − θ_refit)``: what an adversary who
    knows the remaining rows (hence the refit) reads off the published θ alone."""
    maths = model._erasure_maths()
    v = dense_curvature(refit) @ (model._get_flat_params() - refit._get_flat_params())
    return cosine(read_row(v, (maths.n_outputs, maths.width))[0], x)


def traced(M, maths):
    q, w = maths.n_outputs, maths.width
    return np.einsum("aiaj->ij", M.reshape(q, w, q, w))


def residue_attack(M, M_refit, maths, x):
    D = traced(M - M_refit, maths)
    values, vectors = np.linalg.eigh(D)
    return cosine(vectors[:-1, np.argmax(np.abs(values))], x)


def attacks(name, load, rows):
    X, _, y, _ = _split(load)
    rng = np.random.default_rng(3)
    targets = rng.choice(len(y), size=N_ATTACKED, replace=False)
    others = rng.choice(np.setdiff1d(np.arange(len(y)), targets), size=N_ATTACKED)
    first = rng.choice(
        np.setdiff1d(np.arange(len(y)), targets),
        size=max(1, len(y) // 100),
        replace=False,
    )
    fitted = ErasableLogisticRegression(**ATTACK_FIT).fit(X, y)
    maths = fitted._erasure_maths()
    binary = maths.n_outputs == 1
    refit_single, M_refit_second = {}, {}
    for i in targets:
        keep = np.setdiff1d(np.arange(len(y)), [i])
        refit_single[i] = refit(fitted, X[keep], y[keep])
        keep = np.setdiff1d(keep, first)
        M_refit_second[i] = dense_curvature(refit(fitted, X[keep], y[keep]))
    chance = np.mean([cosine(X[i], X[j]) for i, j in zip(targets, others)])

    # the fit design's M after the two requests, for the residue's relative size
    M_fit_second = {}
    for i in targets:
        model = prepare(copy.deepcopy(fitted), DESIGNS["(a) fit (default)"])
        forget(model, X[first], y[first], DESIGNS["(a) fit (default)"])
        forget(model, X[[i]], y[[i]], DESIGNS["(a) fit (default)"])
        M_fit_second[i] = dense_curvature(model)

    def record(label, cos_point, guessed, cos_strong, cos_residue, residue_size):
        rows.append(
            (
                name,
                label,
                np.mean(cos_point),
                np.mean(guessed),
                np.mean(cos_drift),
                np.mean(cos_published),
                np.mean(cos_strong) if cos_strong else None,
                np.mean(cos_residue),
                np.median(residue_size) if residue_size else None,
                chance,
            )
        )
        print(name, label, rows[-1][2:], flush=True)

    for label, design in DESIGNS.items():
        cos_point, guessed, cos_strong, cos_residue, size = [], [], [], [], []
        cos_drift, cos_published, refused = [], [], []
        for i in targets:
            keep = np.setdiff1d(np.arange(len(y)), [i])
            model = prepare(copy.deepcopy(fitted), design)
            try:
                forget(model, X[[i]], y[[i]], design)
            except ErasureError:
                refused.append(i)
                continue
            c, g = point_attack(model, X[i], y[i])
            cos_point.append(c)
            guessed.append(g)
            cos_drift.append(drift_attack(model, X[i]))
            cos_published.append(published_attack(model, refit_single[i], X[i]))
            if binary:
                cos_strong.append(strong_attack(model, X[keep], X[i]))
            model = prepare(copy.deepcopy(fitted), design)
            try:
                forget(model, X[first], y[first], design)
                forget(model, X[[i]], y[[i]], design)
            except ErasureError:
                refused.append(i)
                continue
            M = dense_curvature(model)
            cos_residue.append(residue_attack(M, M_refit_second[i], maths, X[i]))
            size.append(
                np.linalg.norm(M - M_fit_second[i], 2)
                / np.linalg.norm(M_fit_second[i] - M_refit_second[i], 2)
            )
        if refused:
            label += f" (a request refused for {len(refused)} of {N_ATTACKED})"
        record(label, cos_point, guessed, cos_strong, cos_residue, size)

    # references: the states of refits without the row
    model_design = DESIGNS["(a) fit (default)"]
    model = prepare(copy.deepcopy(fitted), model_design)
    M_first = dense_curvature(forget(model, X[first], y[first], model_design))
    keep = np.setdiff1d(np.arange(len(y)), first)
    M_refit_first = dense_curvature(refit(fitted, X[keep], y[keep]))
    cos_point, guessed, cos_strong, cos_residue = [], [], [], []
    cos_drift, cos_published = [], []
    for i in targets:
        keep = np.setdiff1d(np.arange(len(y)), [i])
        # a cold fit: a warm-started solver's residual still points at the row
        cold = ErasableLogisticRegression(**ATTACK_FIT).fit(X[keep], y[keep])
        c, g = point_attack(cold, X[i], y[i])
        cos_point.append(c)
        guessed.append(g)
        cos_drift.append(drift_attack(refit_single[i], X[i]))
        cos_published.append(0.0)  # the refit is the refit
        if binary:
            cos_strong.append(strong_attack(refit_single[i], X[keep], X[i]))
        # a row that was not erased: the residue attack on the fit design after
        # the first request only, against the refit without that request
        cos_residue.append(residue_attack(M_first, M_refit_first, maths, X[i]))
    record(
        "reference: refit without the row (residue: a row not erased)",
        cos_point,
        guessed,
        cos_strong,
        cos_residue,
        None,
    )


def _fmt(value, spec=".3f"):
    return "–" if value is None else format(value, spec)


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", RefitRecommendedWarning)  # the soak's status
    start = time.perf_counter()
    soak_rows, attack_rows = [], []
    for name, load in DATASETS.items():
        soak(name, load, soak_rows)
        print(f"{time.perf_counter() - start:.0f} s", flush=True)
    for name in ATTACK_DATASETS:
        attacks(name, DATASETS[name], attack_rows)
        print(f"{time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start

    today = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, shared"
    out = [f"# Linearisation point and privacy ({today}, {machine})", ""]
    out += [
        "Prototypes of issue 22's designs (the engine untouched: the published "
        "state is re-written between requests; see the script's docstring). "
        f"Whole run {elapsed:.0f} s.",
        "",
        "## Soak: 50 requests of 1 % each",
        "",
        "Protocol of `soak.md` (C = 1, Hessian, ε = 1, solver tol 1e-10). "
        "*distance*: ‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖ (0: the refit; 1: nothing "
        "erased).",
        "",
        "| data | design | acc. after 1 / 10 / 25 / 50 | refit acc. (50) "
        "| distance after 1 / 10 / 25 / 50 | status |",
        "|---|---|---|---|---|---|",
    ]
    for name, label, acc, refit_acc, dist, status in soak_rows:
        accs = " / ".join(f"{acc[k]:.3f}" if k in acc else "–" for k in CHECKPOINTS)
        dists = " / ".join(f"{dist[k]:.3g}" if k in dist else "–" for k in CHECKPOINTS)
        out.append(
            f"| {name} | {label} | {accs} | {refit_acc:.3f} | {dists} | {status} |"
        )
    out += [
        "",
        f"## Attacks: one row erased by itself ({N_ATTACKED} rows, fit tol 1e-8)",
        "",
        "*point*: mean |cos(x̂, x)| of the row read off `M (point − θ) − r` from "
        "the pickle alone, and the fraction of labels read off it; *cert. drift*: "
        "the same with `θ − θ*` solved from the certificate's `gram_drift` and "
        "Gram; *θ vs refit*: the row read off `M_refit (θ − θ_refit)`, what an "
        "adversary who knows the remaining rows reads off the published θ of any "
        "approximate update (0 for the refit itself); *strong*: the "
        "same after recovering the curvature's point from `M` and the remaining "
        "rows (binary); *residue*: the row erased as the second request (after a "
        "random 1 %), top eigenvector of the class-traced `M − M_refit` (an "
        "oracle attack); *residue size*: ‖M − M_(a)‖₂ / ‖M_(a) − M_refit‖₂, median "
        "(0: the fit design's M); *chance*: mean |cos| between the row and "
        "another random training row.",
        "",
        "| data | design | point: cos | point: label | cert. drift: cos "
        "| θ vs refit: cos | strong: cos | residue: cos | residue size | chance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label, cp, gl, cd, cpub, cs, cr, size, chance in attack_rows:
        out.append(
            f"| {name} | {label} | {cp:.3f} | {gl:.1f} | {cd:.3f} | {cpub:.3f} "
            f"| {_fmt(cs)} | {cr:.3f} | {_fmt(size, '.3g')} | {chance:.3f} |"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
