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
``"cg"`` structure, which holds the same matrix (tested), and the diagonal's from
that matrix's diagonal. With 6 classes the fidelity uses a smaller vocabulary
(``min_df=6``), where ``"cg"``'s 21 pair blocks stay small.

Run ``python benchmarks/bench_scalable.py`` (about 15 minutes on a busy 2-core
machine); ``--quick`` for a small smoke run. Writes
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

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.datasets import load_docstring_corpus
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


def speed_rows(name, X, y, structures, C, request_rows, refit_time, fit_time):
    """Stored bytes, build and request latency of each structure."""
    rows = []
    for label, params in structures.items():
        build, model = timed(
            ErasableLogisticRegression(C=C, curvature="hessian", **params).fit, X, y
        )
        stored = model.curvature_inverse_.nbytes
        one = request_latency(model, X, y, [len(y) - 1], repeats=2)
        many = request_latency(model, X, y, request_rows)
        rows.append(
            f"| {name} | {label} | {stored / 2**20:.0f} MB | "
            f"{build:.1f} s ({build / fit_time:.1f}×) | {one * 1e3:.0f} ms | "
            f"{many:.2f} s ({many / refit_time:.3f}×) |"
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


def fidelity_rows(name, X, y, structures, C, forget):
    """Relative distance to a tight refit of one request.

    The dense block's step is computed exactly on the ``"cg"`` structure (the same
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
        ErasableLogisticRegression(curvature="hessian", curvature_structure="cg", **kw),
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

    rows = []
    for label, step in (
        ("diagonal", diagonal),
        ("dense block (exact solve)", exact),
        ("cg (default tolerance)", None),
    ):
        updates = model._compute_forget(request, step=step)
        theta = flat(updates["coef_"], updates["intercept_"])
        distance = relative_parameter_distance(theta, original, target)
        rows.append(f"| {name} | {label} | {distance:.3f} |")
        print(rows[-1], flush=True)
    for label, params in structures.items():
        fitted = ErasableLogisticRegression(curvature="hessian", **kw, **params)
        warm_fit(fitted, X, y, start)
        before = flat(fitted.coef_, fitted.intercept_)
        fitted.partial_forget(X[forget], y[forget])
        theta = flat(fitted.coef_, fitted.intercept_)
        distance = relative_parameter_distance(theta, before, target)
        rows.append(f"| {name} | {label} | {distance:.3f} |")
        print(rows[-1], flush=True)
    return rows


def main(
    quick=False,
    problems=("text2", "images", "text6"),
    dense_timing=True,
    image_shape=(6000, 784),
    output=RESULTS,
):
    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.default_rng(0)
    speed = [
        "| problem | structure | stored | erasable fit (× plain fit) "
        "| forget 1 row | forget k rows (× refit) |",
        "|---|---|---|---|---|---|",
    ]
    fidelity = [
        "| problem | curvature | relative distance to the refit |",
        "|---|---|---|",
    ]
    for problem in problems:
        if problem == "images":
            image_rows(speed, fidelity, rng, quick, dense_timing, image_shape)
        else:
            text_rows(speed, fidelity, rng, quick, int(problem[4:]))
        write(speed, fidelity, quick, output, done=False)
    write(speed, fidelity, quick, output, done=True)


def text_rows(speed, fidelity, rng, quick, n_classes):
    """The docstring corpus, ``C=10``."""
    C = 10.0
    dtype = np.float64 if n_classes == 2 else np.float32
    X, y = load_docstring_corpus(
        n_classes=n_classes, min_df=2 if not quick else 30, dtype=dtype
    )
    name = f"docstrings, {n_classes} classes, {X.shape[1]} features"
    fit_time, _ = timed(LogisticRegression(C=C).fit, X, y)
    forget = rng.choice(len(y), 100, replace=False)
    keep = np.setdiff1d(np.arange(len(y)), forget)
    refit_time, _ = timed(LogisticRegression(C=C).fit, X[keep], y[keep])
    structures = {"cg": {"curvature_structure": "cg"}}
    if n_classes > 2:  # "cg" would hold 21 pair blocks: 1.4 GB here
        structures = {"cg-class": {"curvature_structure": "cg-class"}}
    speed += speed_rows(
        f"{name} (k = 100, {dtype.__name__})",
        X,
        y,
        structures,
        C,
        forget,
        refit_time,
        fit_time,
    )
    # Fidelity of a 1 % deletion. With 6 classes, "cg" (needed for the
    # exact step) holds 21 pair blocks: a smaller vocabulary keeps it small.
    if n_classes > 2:
        X, y = load_docstring_corpus(n_classes=n_classes, min_df=6 if not quick else 60)
    forget = rng.choice(len(y), len(y) // 100, replace=False)
    compared = {}
    if n_classes > 2:
        compared["cg-class"] = {"curvature_structure": "cg-class"}
    fidelity += fidelity_rows(
        f"docstrings, {n_classes} classes, {X.shape[1]} features, 1 % deleted",
        X,
        y,
        compared,
        C,
        forget,
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
        "blocks (dense, block_size=None)": {"curvature_structure": "blocks"},
        "cg": {"curvature_structure": "cg"},
        "cg-class": {"curvature_structure": "cg-class"},
    }
    if not dense_timing:
        del structures["blocks (dense, block_size=None)"]
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
    compared = {
        "per class (block_size='class')": {"block_size": "class"},
        "cg-class": {"curvature_structure": "cg-class"},
    }
    fidelity += fidelity_rows(
        f"{name}, half a class deleted", X, y, compared, 1.0, forget
    )


def write(speed, fidelity, quick, output, done):
    """Write the tables so far (the run writes once per problem)."""
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    lines = [
        f"# Scalable curvature: {datetime.date.today()}, {platform.machine()}, "
        f"{os.cpu_count()} cores (shared, noisy), BLAS threads: {threads}",
        "",
        "Hessian curvature (the influence update), `leave_out=True`. Each ratio is "
        "against a plain `LogisticRegression.fit` (build) or the refit on the "
        "remaining rows (requests), both timed in the same run with the same `C`"
        " and default `tol`. `cg`'s CG stops at a preconditioned relative "
        "residual of 1e-3.",
        "",
        *speed,
        "",
        "Relative parameter distance `‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖` (lower is "
        f"better; the refit at `tol={REFERENCE_TOL}`, warm-started). The dense "
        "block's step is the exact solve with the same matrix (CG to 1e-10), the "
        "diagonal's uses that matrix's diagonal:",
        "",
        *fidelity,
        "",
    ]
    if quick:
        lines[0] += " (--quick: small problems)"
    if not done:
        lines[0] += " (partial: the run stopped early)"
    Path(output).write_text("\n".join(lines))
    if done:
        print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--problems",
        nargs="+",
        default=["text2", "images", "text6"],
        choices=["text2", "images", "text6"],
    )
    parser.add_argument(
        "--image-shape", nargs=2, type=int, default=[6000, 784], metavar=("N", "D")
    )
    parser.add_argument("--output", default=RESULTS, type=Path)
    parser.add_argument(
        "--no-dense-timing",
        dest="dense_timing",
        action="store_false",
        help="skip timing the dense block on the images (minutes)",
    )
    main(**vars(parser.parse_args()))
