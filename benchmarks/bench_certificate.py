"""How tight the certificates are, and what verification costs.

1. **Tightness** on scikit-learn's bundled data sets (standardised), binary and
   multinomial, Hessian and Fisher steps: after the 1st and the 10th sequential
   request of 1 % of the rows,

   - the data-free certified bound on ``‖∇J_rem‖`` against the true residual
     (computed with the remaining rows): ``bound / true`` ≥ 1 always;
   - the distance bounds against the true distance to a refit (``tol=1e-10``):
     the data-free one (``fit_intercept=False`` only, where the penalty makes
     the objective 1-strongly convex) and :func:`verify_erasure`'s (with data).

2. **Cost**, each a ratio against a time measured in the same run: the
   certificate's share of a request, and :func:`verify_erasure` against the
   refit (``clone(model).fit`` on the remaining rows) and against
   ``LogisticRegression.fit``, on the core benchmark's data (n = 50 000,
   d = 1 000, binary).

Run ``python benchmarks/bench_certificate.py`` (a few minutes); ``--quick`` for a
smoke run. Writes ``benchmarks/results/certificate.md``.
"""

import argparse
import copy
import datetime
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_classification,
)
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.certificate import verify_erasure
from sklearn_ssse.exceptions import RefitRecommendedWarning

RESULTS = Path(__file__).parent / "results" / "certificate.md"
DATASETS = {
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "iris": load_iris,
    "digits": load_digits,
}


def load(name):
    X, y = DATASETS[name](return_X_y=True)
    _, first = np.unique(X, axis=0, return_index=True)
    X, y = X[np.sort(first)], y[np.sort(first)]
    X = StandardScaler().fit_transform(X)
    return X[:, X.std(axis=0) > 0], y


def exact_retrain(model, X, y):
    """The remaining objective's minimiser: a refit polished by Newton steps.

    ``clone(model).fit`` stops at lbfgs's tolerance, whose own error can exceed
    the distances measured here; three exact Newton steps (dense Hessian,
    pseudo-inverse along the softmax's flat direction) bring it to rounding.
    """
    refit = clone(model).set_params(tol=1e-10).fit(X, y)
    maths = refit._erasure_maths()
    C, strength, penalized = refit._objective_scaling()
    theta = refit._get_flat_params().astype(np.float64)
    yi = np.searchsorted(refit.classes_, y)
    active = np.ones(len(refit.classes_), dtype=bool)
    weights = np.ones(len(y))
    bounds = [(0, maths.n_params)]
    for _ in range(3):
        gradient = C * maths.gradient_sums(
            X, yi, weights, theta, active, len(active)
        ).sum(0)
        gradient += strength * penalized * theta
        (H,) = maths.curvature_blocks(X, yi, weights, theta, active, "hessian", bounds)
        H = C * H + np.diag(strength * penalized)
        theta = theta - np.linalg.lstsq(H, gradient, rcond=1e-12)[0]
    return theta


def tightness(name, params, n_requests):
    X, y = load(name)
    model = ErasableLogisticRegression(max_iter=10000, **params)
    model.set_params(certificate_budget=None).fit(X, y)
    order = np.random.default_rng(0).permutation(len(y))
    size = max(1, len(y) // 100)
    alive = np.ones(len(y), dtype=bool)
    rows = []
    for r in range(n_requests):
        forget = order[r * size : (r + 1) * size]
        model.partial_forget(X[forget], y[forget])
        alive[forget] = False
        if r + 1 not in (1, n_requests):
            continue
        certificate = model.request_records_[-1].certificate
        check = verify_erasure(model, X[alive], y[alive])
        true_distance = np.linalg.norm(
            model._get_flat_params() - exact_retrain(model, X[alive], y[alive])
        )
        bound = certificate["cumulative_gradient_bound"]
        free = certificate["distance_bound"]
        rows.append(
            {
                "data": name,
                "classes": len(np.unique(y)),
                "step": ", ".join(f"{k}={v}" for k, v in params.items()) or "default",
                "requests": r + 1,
                "true": check.gradient_norm,
                "bound": bound,
                "relative": certificate["relative_gradient_bound"],
                "distance": true_distance,
                "free": free,
                "verified": check.distance_bound,
            }
        )
    return rows


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.3g}"


def cost(n, d, quick):
    X, y = make_classification(n, d, n_informative=d // 10, random_state=0)
    X = StandardScaler().fit_transform(X)
    model = ErasableLogisticRegression().fit(X, y)
    forget = np.arange(100)
    plain = copy.deepcopy(model)
    state = plain.erasure_state_.replace(certificate_state=None)
    plain._publish({"erasure_state_": state})
    repeats = 3 if quick else 5

    def best(function):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    share = {k: certificate_share(model, plain, X, y, k) for k in (1, 100)}
    with_certificate = best(
        lambda: copy.deepcopy(model).partial_forget(X[forget], y[forget])
    )
    without = best(lambda: copy.deepcopy(plain).partial_forget(X[forget], y[forget]))
    copy_time = best(lambda: copy.deepcopy(model))
    updated = copy.deepcopy(model).partial_forget(X[forget], y[forget])
    Xr, yr = X[100:], y[100:]
    verify = best(lambda: verify_erasure(updated, Xr, yr, X_query=X[:1000]))
    start = time.perf_counter()
    clone(model).fit(Xr, yr)
    refit = time.perf_counter() - start
    start = time.perf_counter()
    LogisticRegression().fit(Xr, yr)
    lr = time.perf_counter() - start
    check = verify_erasure(updated, Xr, yr, X_query=X[:1000])
    return {
        "n": n,
        "d": d,
        "request": with_certificate - copy_time,
        "request_plain": without - copy_time,
        "verify": verify,
        "refit": refit,
        "lr": lr,
        "check": check,
        "share": share,
    }


def certificate_share(model, plain, X, y, k, n_requests=9):
    """Median time of the certificate itself against the request without it.

    Sequential requests of ``k`` rows on two copies of the fitted model, one
    without a certificate state; the certificate is timed inside the request
    (``request_certificate``), so both figures come from the same run.
    """
    from sklearn_ssse import base

    original = base.request_certificate
    spent = []

    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        spent.append(time.perf_counter() - start)
        return out

    with_cert, without = copy.deepcopy(model), copy.deepcopy(plain)
    plain_times = []
    base.request_certificate = timed
    try:
        for r in range(1, n_requests + 1):
            rows = np.arange(r * k, (r + 1) * k) + 200
            with_cert.partial_forget(X[rows], y[rows])
            start = time.perf_counter()
            without.partial_forget(X[rows], y[rows])
            plain_times.append(time.perf_counter() - start)
    finally:
        base.request_certificate = original
    return float(np.median(spent)), float(np.median(plain_times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RefitRecommendedWarning)
    n_requests = 3 if args.quick else 10
    configs = [
        {},
        {"curvature": "fisher"},
        {"fit_intercept": False},
        {"curvature_structure": "cg"},
        {"curvature_structure": "cg-rows"},
    ]
    rows = []
    for name in DATASETS:
        for params in configs:
            rows.extend(tightness(name, params, n_requests))
            print(rows[-1], flush=True)
    n, d = (5000, 200) if args.quick else (50000, 1000)
    timing = cost(n, d, args.quick)
    print(timing, flush=True)

    date = datetime.date.today().isoformat()
    cores = os.cpu_count()
    lines = [
        f"# Certificate: tightness and cost ({date}, {platform.machine()}, "
        f"{cores} cores, shared, noisy)",
        "",
        "Sequential requests of 1 % of the rows (random), standardised features, "
        "default `tol`. *true*: ‖∇J_rem‖ at the updated parameters, computed with "
        "the remaining rows; *certified*: the data-free bound carried by the "
        "request record; *relative*: certified / the gradient that ignoring the "
        "requests would leave (what `certificate_budget` is compared with, "
        "default 10⁵). Distances: to the exact retrain (a refit polished by three "
        "Newton steps); "
        "*data-free* only where every coordinate is penalised "
        "(`fit_intercept=False`), *verified*: `verify_erasure` with the data.",
        "",
        "| data | classes | step | requests | true ‖∇‖ | certified | certified / "
        "true | relative | distance to refit | data-free bound / true | verified "
        "bound / true |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['classes']} | {r['step']} | {r['requests']} | "
            f"{r['true']:.3g} | {r['bound']:.3g} | {ratio(r['bound'], r['true'])} | "
            f"{r['relative']:.3g} | {r['distance']:.3g} | "
            f"{ratio(r['free'], r['distance'])} | "
            f"{ratio(r['verified'], r['distance'])} |"
        )
    t = timing
    check = t["check"]
    lines += [
        "",
        f"**Cost** (n = {t['n']}, d = {t['d']}, binary `make_classification`, "
        "one request of 100 rows; medians):",
        "",
        "| measured | time | ratio |",
        "|---|---|---|",
        *(
            f"| the certificate alone, {k}-row requests (sequential, median) | "
            f"{cert * 1e3:.2f} ms | {cert / plain:.3f} × the request without it "
            f"({plain * 1e3:.2f} ms) |"
            for k, (cert, plain) in t["share"].items()
        ),
        f"| `verify_erasure` (+ 1 000 query rows) | {t['verify']:.3f} s | "
        f"{t['verify'] / t['refit']:.3f} × the refit ({t['refit']:.2f} s); "
        f"{t['verify'] / t['lr']:.3f} × `LogisticRegression.fit` "
        f"({t['lr']:.2f} s) |",
        "",
        f"There: true ‖∇J_rem‖ = {check.gradient_norm:.3g}, certified "
        f"{check.certified_gradient_bound:.3g}; verified distance bound "
        f"{check.distance_bound:.3g}; largest change of a predicted probability "
        f"on the query rows ≤ {check.max_proba_change:.3g}.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
