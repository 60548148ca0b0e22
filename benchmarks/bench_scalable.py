"""Curvature structures that scale: sparse text and a wide multinomial (issue 11).

Problems:

- the standard library's docstrings as TF-IDF (``load_docstring_corpus``), binary
  and 6 classes, all ~28 000 features, ``C=10``;
- an image-shaped dense multinomial: 6 000 rows of 28×28 digits (scikit-learn's
  8×8 digits upsampled with ``scipy.ndimage.zoom``, randomly rotated, shifted and
  noised so that the 784 pixels have full rank), 10 classes.

For each structure it reports the stored bytes, the build (erasable ``fit``)
against a plain ``LogisticRegression.fit``, the latency of forgetting 1 row and
100 rows (text) or half a class (images) against the refit on the rest, and the
relative parameter distance ``‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖`` of a request
against the diagonal curvature (``block_size=1``) and the dense block
(``block_size=None``). The dense block does not fit at 28 000 features (6 GB
binary, 220 GB for 6 classes): its step is computed exactly by CG on the
``"cg-rows"`` structure, which holds the same matrix as ``"cg"`` and the dense
block (tested), and the diagonal's from that matrix's diagonal.

Run ``python benchmarks/bench_scalable.py`` (about 5 minutes on a quiet machine,
8 on a busy 2-core one); ``--quick`` for a small smoke run; ``--dense-timing``
adds the images' dense block and ``"cg"`` pair blocks (minutes each). Writes
``benchmarks/results/scalable.md``.
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
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.datasets import load_docstring_corpus
from sklearn_ssse.exceptions import CostlyErasureWarning
from sklearn_ssse.metrics import relative_parameter_distance

RESULTS = Path(__file__).parent / "results" / "scalable.md"
REFERENCE_TOL = 1e-10  # the refit that distances are measured against


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def make_image_like(n_samples=6000, random_state=0):
    """28×28 digits: upsampled 8×8 digits, rotated ±15°, shifted ±2 px, noised."""
    rng = np.random.default_rng(random_state)
    digits = load_digits()
    pick = rng.integers(0, len(digits.images), n_samples)
    out = np.empty((n_samples, 28, 28))
    for j, i in enumerate(pick):
        image = ndimage.zoom(digits.images[i] / 16.0, 3.5, order=1)
        image = ndimage.rotate(image, rng.uniform(-15, 15), reshape=False, order=1)
        image = ndimage.shift(image, rng.uniform(-2, 2, 2), order=1)
        out[j] = np.clip(image + 0.05 * rng.standard_normal(image.shape), 0, 1)
    return out.reshape(n_samples, -1), digits.target[pick]


def request_latency(model, X, y, rows, repeats=1):
    """Median seconds of ``partial_forget(X[rows], y[rows])`` on fresh copies."""
    times = []
    for _ in range(repeats):
        work = copy.deepcopy(model)
        times.append(timed(work.partial_forget, X[rows], y[rows])[0])
    return float(np.median(times))


def single_rows(model, X, y, rows):
    """Median seconds of one-row requests, one after another on one copy."""
    work = copy.deepcopy(model)
    return float(
        np.median([timed(work.partial_forget, X[[i]], y[[i]])[0] for i in rows])
    )


def speed_rows(name, X, y, structures, C, request_rows, refit_time, fit_time):
    """Stored bytes, build and request latency of each structure."""
    rows = []
    singles = np.setdiff1d(np.arange(len(y)), request_rows)[-5:]
    for label, params in structures.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CostlyErasureWarning)
            build, model = timed(
                ErasableLogisticRegression(C=C, curvature="hessian", **params).fit,
                X,
                y,
            )
        if params.get("curvature_structure", "auto") == "auto":
            label = f"{label} → {model.curvature_structure_!r}"
        if any(issubclass(w.category, CostlyErasureWarning) for w in caught):
            label += " (fit warns: `CostlyErasureWarning`)"
        stored = model.curvature_inverse_.nbytes
        one = single_rows(model, X, y, singles)
        many = request_latency(
            model, X, y, request_rows, repeats=1 if build > 20 else 3
        )
        rows.append(
            f"| {name} | {label} | {stored / 1e6:.1f} MB | "
            f"{build:.2f} s ({build / fit_time:.1f}×) | {one * 1e3:.1f} ms "
            f"({one / refit_time:.3f}×) | {many:.3f} s ({many / refit_time:.3f}×) |"
        )
        print(rows[-1], flush=True)
    return rows


def warm_fit(model, X, y, start):
    """``model.fit`` started from ``start``'s solution (the optimum is unique:
    a tight ``tol`` then costs a few iterations instead of thousands)."""
    model.set_params(warm_start=True)
    model.coef_, model.intercept_ = start.coef_.copy(), start.intercept_.copy()
    return model.fit(X, y)


def flat(coef, intercept):
    return np.concatenate([np.ravel(coef), np.ravel(intercept)])


class count_products:
    """Counts the curvature products CG makes inside a ``with`` block."""

    def __init__(self, curvature):
        self.cls, self.count = type(curvature), 0

    def __enter__(self):
        original = self.original = self.cls._conjugate_gradient

        def counted(inner, b, matvec, precondition):
            def product(vector):
                self.count += 1
                return matvec(vector)

            return original(inner, b, product, precondition)

        self.cls._conjugate_gradient = counted
        return self

    def __exit__(self, *exc):
        self.cls._conjugate_gradient = self.original


def fidelity_rows(name, X, y, structures, C, forget, sweep=(1e-2,)):
    """Relative distance to a tight refit of one request.

    The dense block's step is computed exactly on the ``"cg-rows"`` structure (the same
    matrix, tests/test_curvature_scalable.py; CG to a residual of 1e-10), and
    the diagonal curvature's from its diagonal: both from the same fitted model,
    without the dense inverse's memory and time. ``structures`` are fitted
    separately.
    """
    keep = np.setdiff1d(np.arange(len(y)), forget)
    kw = dict(C=C, tol=REFERENCE_TOL, max_iter=10_000)
    start = LogisticRegression(C=C, max_iter=1000).fit(X, y)
    refit = warm_fit(LogisticRegression(**kw), X[keep], y[keep], start)
    target = flat(refit.coef_, refit.intercept_)
    model = warm_fit(
        ErasableLogisticRegression(
            curvature="hessian", curvature_structure="cg-rows", **kw
        ),
        X,
        y,
        start,
    )
    original = flat(model.coef_, model.intercept_)
    request = model._prepare_forget(X[forget], y[forget], None)

    def exact(gradient, inverse, downdated):
        downdated.rtol = 1e-10
        return -downdated.apply(gradient)

    def diagonal(gradient, inverse, downdated):
        return -gradient / downdated.diagonal()

    def at(rtol):
        def step(gradient, inverse, downdated):
            downdated.rtol = rtol
            return -downdated.apply(gradient)

        return step

    steps = [
        ("diagonal", diagonal),
        ("dense block (exact solve: CG to 1e-10)", exact),
    ]
    steps += [(f"cg / cg-rows, CG to {rtol:g}", at(rtol)) for rtol in sweep]
    rows = []
    for label, step in steps:
        products = count_products(model.curvature_inverse_)
        with products:
            updates = model._compute_forget(request, step=step)
        theta = flat(updates["coef_"], updates["intercept_"])
        distance = relative_parameter_distance(theta, original=original, refit=target)
        count = f"{products.count}" if step is not diagonal else "—"
        rows.append(f"| {name} | {label} | {distance:.3f} | {count} |")
        print(rows[-1], flush=True)
    for label, params in structures.items():
        fitted = ErasableLogisticRegression(curvature="hessian", **kw, **params)
        warm_fit(fitted, X, y, start)
        before = flat(fitted.coef_, fitted.intercept_)
        fitted.partial_forget(X[forget], y[forget])
        theta = flat(fitted.coef_, fitted.intercept_)
        distance = relative_parameter_distance(theta, original=before, refit=target)
        rows.append(f"| {name} | {label} | {distance:.3f} | |")
        print(rows[-1], flush=True)
    return rows


def main(
    quick=False,
    problems=("text2", "text6", "images"),
    dense_timing=False,
    image_shape=(6000, 784),
    output=RESULTS,
):
    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.default_rng(0)
    speed = [
        "| problem | structure | stored | erasable fit (× plain fit) "
        "| forget 1 row (× refit) | forget k rows (× refit) |",
        "|---|---|---|---|---|---|",
    ]
    fidelity = [
        "| problem | curvature | relative distance to the refit | CG products |",
        "|---|---|---|---|",
    ]
    floor = []
    started = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        for problem in problems:
            if problem == "images":
                image_rows(speed, fidelity, rng, quick, dense_timing, image_shape)
            else:
                text_rows(speed, fidelity, floor, rng, quick, int(problem[4:]))
            write(speed, fidelity, floor, quick, output, started, done=False)
    write(speed, fidelity, floor, quick, output, started, done=True)


def product_time(model, repeats=20):
    """Median seconds of one product with the stored curvature."""
    curvature = model.curvature_inverse_
    vector = np.random.default_rng(0).standard_normal(curvature.n_params)
    vector = vector.astype(curvature.dtype)
    times = [timed(curvature.matvec, vector)[0] for _ in range(repeats)]
    return float(np.median(times))


def text_rows(speed, fidelity, floor, rng, quick, n_classes):
    """The docstring corpus, ``C=10``, all ~28 000 features."""
    C = 10.0
    X, y = load_docstring_corpus(n_classes=n_classes, min_df=2 if not quick else 30)
    name = f"docstrings, {n_classes} classes, {X.shape[1]} features"
    fit_time = min(timed(LogisticRegression(C=C).fit, X, y)[0] for _ in range(2))
    forget = rng.choice(len(y), 100, replace=False)
    keep = np.setdiff1d(np.arange(len(y)), forget)
    refit_time, _ = timed(LogisticRegression(C=C).fit, X[keep], y[keep])
    structures = {"auto (default)": {}}
    if n_classes > 2:
        structures["cg-class"] = {"curvature_structure": "cg-class"}
    structures["cg-rows (opt-in)"] = {"curvature_structure": "cg-rows"}
    speed += speed_rows(
        f"{name} (k = 100)", X, y, structures, C, forget, refit_time, fit_time
    )
    # The floor: one product's time, and the products a request needs.
    model = ErasableLogisticRegression(
        C=C, curvature="hessian", curvature_structure="cg-rows"
    ).fit(X, y)
    floor.append(
        f"| {name} | {model.curvature_structure_} | "
        f"{product_time(model) * 1e3:.2f} ms | {refit_time * 1e3:.0f} ms |"
    )
    forget = rng.choice(len(y), len(y) // 100, replace=False)
    compared = (
        {"cg-class": {"curvature_structure": "cg-class"}} if n_classes > 2 else {}
    )
    fidelity += fidelity_rows(
        f"docstrings, {n_classes} classes, {X.shape[1]} features, 1 % deleted",
        X,
        y,
        compared,
        C,
        forget,
        sweep=(1e-1, 3e-2, 1e-2, 1e-3),
    )


def image_rows(speed, fidelity, rng, quick, dense_timing, shape):
    """The wide dense multinomial (``shape``: rows, and pixels kept out of 784)."""
    n_images, n_pixels = shape if not quick else (1500, 196)
    X, y = make_image_like(n_images)
    X = X[:, :: 784 // n_pixels]
    name = f"images, {X.shape[0]} × {X.shape[1]}, 10 classes"
    forget = rng.choice(np.flatnonzero(y == 3), np.sum(y == 3) // 2, replace=False)
    keep = np.setdiff1d(np.arange(len(y)), forget)
    fit_time, _ = timed(LogisticRegression().fit, X, y)
    refit_time, _ = timed(LogisticRegression().fit, X[keep], y[keep])
    structures = {
        "auto (default)": {},
        "cg": {"curvature_structure": "cg"},
        "cg-class": {"curvature_structure": "cg-class"},
        "cg-rows (opt-in)": {"curvature_structure": "cg-rows"},
    }
    if not dense_timing:  # minutes on one core: the dense block's inverse, and
        # "cg"'s 55 pair blocks (55 · n · 785² flops)
        del structures["auto (default)"], structures["cg"]
    speed += speed_rows(
        f"{name} (k = {len(forget)}: half a class)",
        X,
        y,
        structures,
        1.0,
        forget,
        refit_time,
        fit_time,
    )
    compared = {"cg-class": {"curvature_structure": "cg-class"}}
    fidelity += fidelity_rows(
        f"{name}, half a class deleted",
        X,
        y,
        compared,
        1.0,
        forget,
        sweep=(1e-1, 3e-2, 1e-2, 1e-3),
    )


def write(speed, fidelity, floor, quick, output, started, done):
    """Write the tables so far (the run writes once per problem)."""
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"# Scalable curvature: {datetime.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load:.1f} at the end (shared, "
        f"noisy), one BLAS thread (OMP_NUM_THREADS={threads})",
        "",
        "Hessian curvature (the influence update), `leave_out=True`. Each ratio is "
        "against a plain `LogisticRegression.fit` (build) or the refit on the "
        "remaining rows (requests), both timed in the same run with the same `C`"
        " and default `tol`. 1 row: median of 5 one-row requests in sequence; "
        "k rows: median of 3 (1 when the fit took over 20 s), each on a fresh "
        "copy. `cg` stops CG at a preconditioned relative residual of 1e-2 "
        "(the default).",
        "",
        *speed,
        "",
        "Relative parameter distance `‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖` (lower is "
        f"better; the refit at `tol={REFERENCE_TOL}`, warm-started). The dense "
        "block's step is the exact solve with the same matrix (CG to 1e-10), the "
        "diagonal's uses that matrix's diagonal; `cg / cg-rows, CG to r` stops CG "
        "at `r` (the same matrix: the same step; CG products: the curvature "
        "products the request made with `cg-rows`' preconditioner, Jacobi on "
        "text as `cg`'s, the class blocks on images):",
        "",
        *fidelity,
        "",
    ]
    if floor:
        lines += [
            "The floor of a request with the exact curvature: one product "
            "(`M v`, median of 20, with `cg-rows`: two passes over the non-zeros) "
            "against the refit of the k-row request above; a request makes the "
            "CG products listed above plus a few milliseconds of bookkeeping.",
            "",
            "| problem | structure | one product | refit |",
            "|---|---|---|---|",
            *floor,
            "",
        ]
    lines.append(f"Total time {time.perf_counter() - started:.0f} s.")
    if quick:
        lines[0] += " (--quick: small problems)"
    if not done:
        lines[0] += " (partial: the run stopped early)"
    Path(output).write_text("\n".join(lines) + "\n")
    if done:
        print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--problems",
        nargs="+",
        default=["text2", "text6", "images"],
        choices=["text2", "images", "text6"],
    )
    parser.add_argument(
        "--image-shape", nargs=2, type=int, default=[6000, 784], metavar=("N", "D")
    )
    parser.add_argument("--output", default=RESULTS, type=Path)
    parser.add_argument(
        "--dense-timing",
        action="store_true",
        help="also time the default (the dense block) on the images (minutes)",
    )
    main(**vars(parser.parse_args()))
