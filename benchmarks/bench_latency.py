"""Request latency and curvature build, each as a ratio to its floor in the same run.

The floor of a request is its own linear algebra written directly in numpy/BLAS
calls, with nothing of the library around it: one pass over the stored inverse
``M⁻¹`` against ``[U, g]`` (the rows' curvature factor and the step's gradient), the
``k × k`` Cholesky factor of Woodbury's capacitance, and one write of the downdated
inverse ``M⁻¹ + V Vᵀ`` (a copy updated in place by BLAS for a small rank, a SYRK for
a large one), the step ``M⁻¹g + V(Vᵀg)`` following without another pass. The
"plain numpy" column is the same maths written naively (``A @ U``, ``A + V @ V.T``,
then ``new @ g``), as the issue measured it. The floor of the curvature build is one
``syrk`` of the same shape (``n × P``, ``P`` parameters) from scipy's BLAS.

Run ``python benchmarks/bench_latency.py`` (about two minutes); ``--quick`` for a
smoke run that writes nothing. ``--threads`` sets the BLAS threads (default 1: on a
shared machine, multi-threaded timings measure the other tenants). Writes
``benchmarks/results/latency.md``.
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
from scipy.linalg import get_blas_funcs
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier
from sklearn_ssse.neural_network import ErasableMLPClassifier

RESULTS = Path(__file__).parent / "results" / "latency.md"
IN_PLACE_MIN_BYTES = 4 * 2**20  # as in sklearn_ssse._linalg


def median_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def interleaved(functions, repeats):
    """Median and best time of each function, run in turn to share the noise."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    out = {name: float(np.median(t)) for name, t in times.items()}
    out.update({f"{name}_best": float(np.min(t)) for name, t in times.items()})
    return out


# -- the floors: the request's linear algebra, written directly ------------------
def floor_request(A, U, g):
    """Downdated inverse and step of one block, as directly as BLAS allows."""
    d, k = U.shape
    block = np.empty((d, k + 1), dtype=A.dtype, order="F")
    block[:, :k], block[:, k] = U, g
    if k + 1 <= 4:  # GEMV per column beats OpenBLAS's GEMM on thin blocks
        P = np.empty_like(block)
        for j in range(k + 1):
            np.matmul(A, block[:, j], out=P[:, j])
    else:
        P = A @ block
    L = np.linalg.cholesky(np.eye(k, dtype=A.dtype) - U.T @ P[:, :k])
    V = np.linalg.solve(L, P[:, :k].T).T
    if k >= 24:
        new = V @ V.T
        new += A
    elif A.nbytes > IN_PLACE_MIN_BYTES:
        new = A.copy()
        if k == 1:
            get_blas_funcs("ger", (new,))(1.0, V[:, 0], V[:, 0], a=new.T, overwrite_a=1)
        else:
            get_blas_funcs("gemm", (new,))(
                1.0, V, V, beta=1.0, c=new.T, trans_b=1, overwrite_c=1
            )
    else:
        new = np.empty_like(A)
        W = np.hstack([V, np.zeros_like(V)]) if k == 1 else V
        for s in range(0, d, 64):
            np.add(A[s : s + 64], W[s : s + 64] @ W.T, out=new[s : s + 64])
    return new, P[:, k] + V @ (V.T @ g)


def naive_request(A, U, g):
    """The same maths written plainly (the issue's "plain numpy" column)."""
    MU = A @ U
    L = np.linalg.cholesky(np.eye(U.shape[1], dtype=A.dtype) - U.T @ MU)
    V = np.linalg.solve(L, MU.T).T
    new = A + V @ V.T
    return new, new @ g


def request_operands(model, X, y):
    """``(A, U, g)`` of a request on a binary full-block model, outside the timing."""
    state = model.erasure_state_
    maths = model._erasure_maths()
    yi = np.searchsorted(model.classes_, y)
    C, _, _ = model._objective_scaling()
    weights = C * state.fit_class_weight[yi]
    all_active = np.ones(len(model.classes_), dtype=bool)
    rows = maths.factor_rows(X, yi, state.point, all_active, model.curvature)
    U = (rows * np.sqrt(weights)[:, None, None]).reshape(-1, maths.n_params).T
    sums = maths.gradient_sums(
        X, yi, np.ones(len(yi)), state.point, all_active, len(model.classes_)
    )
    g = state.residual_gradient - C * (state.fit_class_weight @ sums)
    A = state.curvature.inverses[0]
    return A, np.ascontiguousarray(U, dtype=A.dtype), g.astype(A.dtype)


def binary_rows(d, k, repeats, n=3000):
    X, y = make_classification(
        n_samples=n, n_features=d - 1, n_informative=min(50, d // 4), random_state=0
    )
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ErasableLogisticRegression(max_iter=50).fit(X, y)
    Xk, yk = X[:k].copy(), y[:k].copy()
    A, U, g = request_operands(model, Xk, yk)
    t = interleaved(
        {
            "request": lambda: copy.copy(model).partial_forget(Xk, yk),
            "floor": lambda: floor_request(A, U, g),
            "naive": lambda: naive_request(A, U, g),
        },
        repeats,
    )
    return f"binary, d = {d}, {k} row{'s' if k > 1 else ''}", t


def multioutput_rows(L, m, k, repeats, dtype, n=2000):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, m)).astype(dtype)
    Y = X @ rng.standard_normal((m, L)) * 0.1 + rng.standard_normal((n, L)) > 0
    Y = Y.astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ErasableMultiOutputClassifier(
            ErasableLogisticRegression(max_iter=30)
        ).fit(X, Y)
    Xk, Yk = X[:k].copy(), Y[:k].copy()
    operands = [
        request_operands(est, Xk, Yk[:, j]) for j, est in enumerate(model.estimators_)
    ]

    def floor():
        for A, U, g in operands:
            floor_request(A, U, g)

    def naive():
        for A, U, g in operands:
            naive_request(A, U, g)

    t = interleaved(
        {
            "request": lambda: copy.copy(model).partial_forget(Xk, Yk),
            "floor": floor,
            "naive": naive,
        },
        repeats,
    )
    name = np.dtype(dtype).name
    return f"multi-output {L} × {m}, {name}, {k} row{'s' if k > 1 else ''}", t


def build_row(n, m, n_classes, repeats):
    X, y = make_classification(
        n_samples=n,
        n_features=m,
        n_informative=min(50, m // 2),
        n_classes=n_classes,
        random_state=0,
    )
    X = np.ascontiguousarray(StandardScaler().fit_transform(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ErasableLogisticRegression(max_iter=30).fit(X, y)
    yi = np.searchsorted(model.classes_, y)
    outputs = 1 if n_classes == 2 else n_classes
    P = outputs * (m + 1)
    # The floor's operand: n × P, Fortran-ordered for BLAS (made outside the timing).
    Z = np.asfortranarray(np.tile(np.hstack([X, np.ones((n, 1))]), (1, outputs)))
    syrk = get_blas_funcs("syrk", (Z,))
    t = interleaved(
        {
            "build": lambda: copy.copy(model)._fit_erasure_state(X, yi, np.ones(n)),
            "syrk": lambda: syrk(1.0, Z, trans=1),
        },
        repeats,
    )
    kind = "binary" if n_classes == 2 else f"multinomial, {n_classes} classes"
    return f"{kind}, n = {n}, P = {P}", t


def mlp_row(n, repeats):
    rng = np.random.default_rng(0)
    X = rng.random((n, 784))
    y = rng.integers(0, 10, size=n)
    X[np.arange(n), y * 78] += 3.0  # something to learn
    params = dict(hidden_layer_sizes=(64,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = interleaved(
            {
                "erasable": lambda: ErasableMLPClassifier(**params).fit(X, y),
                "plain": lambda: MLPClassifier(**params).fit(X, y),
            },
            repeats,
        )
    return t


def main(quick, threads):
    r = 3 if quick else 15
    with threadpool_limits(threads):
        requests = [
            binary_rows(1000, 1, 3 * r),
            binary_rows(1000, 100, r),
            binary_rows(300, 100, r),
        ]
        for dtype in (np.float32, np.float64):
            for k in (1, 100):
                requests.append(
                    multioutput_rows(8 if quick else 40, 512, k, max(3, r // 3), dtype)
                )
        n = 4000 if quick else 20000
        builds = [build_row(n, 400, 2, max(3, r // 5)), build_row(n, 300, 3, 3)]
        mlp_rows = 500 if quick else 1000
        mlp = mlp_row(mlp_rows, 1)

    today = datetime.date.today()
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"# Request latency and build against their floors ({today}; {cores} cores, "
        f"shared, noisy; {threads} BLAS thread{'s' if threads > 1 else ''})",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, NumPy "
        f"{np.__version__}. Medians over repeats, each request interleaved with its "
        "floor so that both see the same load; this machine is shared with other "
        "jobs, so absolute times move by a factor of several from run to run and "
        "the ratios are the figures to read (the median ratio, and the ratio of the "
        "best times, which the other jobs disturb least).",
        "",
        "**Requests** (`partial_forget`, default Hessian, leave-k-out, full block). "
        "Floor: the request's own linear algebra in direct numpy/BLAS calls (one "
        "pass over the stored inverse, one write of the downdated one). Plain "
        "numpy: the same maths written naively.",
        "",
        "| request | `partial_forget` | floor | **request / floor** | best / best "
        "| plain numpy / floor |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in requests:
        lines.append(
            f"| {name} | {t['request'] * 1e3:.2f} ms | {t['floor'] * 1e3:.2f} ms | "
            f"**{t['request'] / t['floor']:.2f}** | "
            f"{t['request_best'] / t['floor_best']:.2f} | "
            f"{t['naive'] / t['floor']:.2f} |"
        )
    lines += [
        "",
        "**Curvature build** (`_fit_erasure_state`: Hessian blocks, factorisation, "
        "gradient sums) against one `syrk` of the same shape (`n × P`).",
        "",
        "| build | build | syrk | **build / syrk** | best / best |",
        "|---|---|---|---|---|",
    ]
    for name, t in builds:
        lines.append(
            f"| {name} | {t['build']:.3f} s | {t['syrk']:.3f} s | "
            f"**{t['build'] / t['syrk']:.2f}** | "
            f"{t['build_best'] / t['syrk_best']:.2f} |"
        )
    lines += [
        "",
        f"**MLP fit**, 784 inputs, 64 hidden units, {mlp_rows} rows, 20 "
        f"epochs: `ErasableMLPClassifier.fit` {mlp['erasable']:.2f} s against "
        f"`MLPClassifier.fit` {mlp['plain']:.2f} s, "
        f"**{mlp['erasable'] / mlp['plain']:.1f}×** "
        "(the difference is the curvature build of the default blocks of 1 024).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    main(args.quick, args.threads)
