"""Request latency and curvature build, each as a ratio to its floor in the same run.

**Requests** run as a stream on one fitted model (each request forgets new rows), as
a server would see them. The request's floor is its own linear algebra written
plainly in numpy/BLAS, as the library publishes it (``LowRankUpdatedInverse``, the
default for dense blocks): one product of the stored base inverse ``A`` with
``[U, g]`` (the rows' curvature factor and the step's gradient; one GEMV per column
up to four columns, which beats OpenBLAS's GEMM on thin operands), the ``k × k``
Cholesky factor of Woodbury's capacitance, the triangular solve for the new factor
columns ``W = A U L⁻ᵀ``, their append to a preallocated ``V``, and the step
``A g + W (Wᵀ g)``, with the fold (``A + V Vᵀ`` written once) when the
accumulated rank would pass ``d/8``: the floor runs the same stream of states as
the library (``FloorStream``). When a request's rank is above ``d/8`` the library
writes the downdated inverse at once (eager); so does the floor. Up to four rows
the library's product takes the rows alone (the gradient lies in their span), and
so does the floor. A second ratio adds to the floor the certificate's own pass
(one product of its ``d × d`` Gram). The "eager floor" column is the
copy-and-update floor (one read, one ``d × d`` write, as every request cost
before the low-rank representation), for comparison; "plain numpy" is the
eager maths written naively. "No certificate" is the same request on a model
whose state holds no certificate (the data-free certificate reads its
``d × d`` Gram once per request, a second pass the floor does not include).

**Build**: ``_fit_erasure_state`` against one ``syrk`` of the same shape (``n × P``,
``P`` parameters) from scipy's BLAS, with and without the certificate's Gram (a
second ``syrk`` of ``n × width``) and with the ``P × P`` inversion timed apart.

**MLP fit**: ``ErasableMLPClassifier.fit`` against ``MLPClassifier.fit`` (784
inputs, 64 hidden units), for the default Gauss–Newton blocks of 1 024 and cheaper
``block_size`` options; fidelity of each option is the relative distance of its
erasure step (one request of 1 % of the rows) to the default blocks' step.

Run ``python benchmarks/bench_latency.py`` (about four minutes); ``--quick`` for a
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
from sklearn_ssse._linalg import spd_inverse
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


class FloorStream:
    """The library's stream of requests, written plainly: lazy factors appended
    to a preallocated ``V`` until the accumulated rank would pass ``d/8``, then
    folded (``A + V Vᵀ`` written once as the new base), as
    ``LowRankUpdatedInverse`` does; a request above ``d/8`` on an empty ``V`` is
    eager. The same operands ``(U, g)`` every time (their values do not change
    the work)."""

    def __init__(self, A, k):
        d = A.shape[0]
        self.A, self.rank, self.limit = A, 0, max(1, d // 8) if d >= 64 else 0
        self.V = np.empty((d, max(self.limit, 1)), dtype=A.dtype, order="F")

    def __call__(self, U, g):
        d, k = U.shape
        if self.rank == 0 and k > self.limit:
            self.A, step = floor_request(self.A, U, g)
            return step
        span = k <= 4  # the rows alone: g = B a, U = B diag(s) (B ~ U here)
        block = np.empty((d, k if span else k + 1), dtype=self.A.dtype, order="F")
        block[:, :k] = U
        if not span:
            block[:, k] = g
        if block.shape[1] <= 4:
            P = np.empty_like(block)
            for j in range(block.shape[1]):
                np.matmul(self.A, block[:, j], out=P[:, j])
        else:
            P = self.A @ block
        if self.rank:
            V = self.V[:, : self.rank]
            P += V @ (V.T @ block)
        old = P @ np.ones(k, dtype=P.dtype) if span else P[:, k]
        L = np.linalg.cholesky(np.eye(k, dtype=U.dtype) - U.T @ P[:, :k])
        W = P[:, :k] / L[0, 0] if k == 1 else np.linalg.solve(L, P[:, :k].T).T
        step = old + W @ (W.T @ g)
        if self.rank + k > self.limit:  # fold: one d × d write
            everything = np.hstack([self.V[:, : self.rank], W])
            new = everything @ everything.T
            new += self.A
            self.A, self.rank = new, 0
        else:
            self.V[:, self.rank : self.rank + k] = W
            self.rank += k
        return step


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
    """A stream of ``repeats`` requests of ``k`` new rows on one model."""
    X, y = make_classification(
        n_samples=n, n_features=d - 1, n_informative=min(50, d // 4), random_state=0
    )
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ErasableLogisticRegression(max_iter=50).fit(X, y)
    bare = copy.deepcopy(model)  # the same model without the certificate
    bare.erasure_state_ = bare.erasure_state_.replace(certificate_state=None)
    rows = [slice(i * k, (i + 1) * k) for i in range(repeats + 1)]
    operands = request_operands(model, X[rows[0]], y[rows[0]])
    # The floor's stream removes the same rows as the library's (distinct rows:
    # removing one row twice would leave M indefinite), operands made up front.
    stream_operands = iter([request_operands(model, *_rows(X, y, r))[1:] for r in rows])
    floor_stream = FloorStream(operands[0], k)
    gram = model.erasure_state_.certificate_state.gram
    stream = iter(rows)
    bare_stream = iter(rows)
    t = interleaved(
        {
            "request": lambda: model.partial_forget(*_rows(X, y, next(stream))),
            "bare": lambda: bare.partial_forget(*_rows(X, y, next(bare_stream))),
            "floor": lambda: floor_stream(*next(stream_operands)),
            # The certificate's own linear algebra: one pass over its Gram.
            "certificate_pass": lambda: gram @ operands[2],
            "eager": lambda: floor_request(*operands),
            "naive": lambda: naive_request(*operands),
        },
        repeats,
    )
    return f"binary, d = {d}, {k} row{'s' if k > 1 else ''}", t


def _rows(X, y, rows):
    return X[rows], y[rows]


def batched_floor(A, U, g, eager=True):
    """The batched request's linear algebra, plainly: one stacked product against
    ``[U, g]``, stacked Cholesky factors of the capacitances, ``V = M⁻¹U L⁻ᵀ``, the
    step, and (``eager``) one write of the downdated stack ``A + V Vᵀ``."""
    n, d, k = U.shape
    block = np.concatenate([U, g[:, :, None]], axis=2)
    P = np.matmul(A, block)
    MU = P[:, :, :k]
    C = np.eye(k, dtype=A.dtype) - np.matmul(U.transpose(0, 2, 1), MU)
    L = np.linalg.cholesky(C)
    V = MU / L[:, :, :1] if k == 1 else np.matmul(MU, np.linalg.inv(L).mT)
    step = P[:, :, k] + np.matmul(V, np.matmul(V.mT, g[:, :, None]))[:, :, 0]
    if eager:
        new = np.matmul(V, V.mT)
        new += A
        return new, step
    return V, step


def _fit_multioutput(L, m, dtype, n=2000):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, m)).astype(dtype)
    Y = X @ rng.standard_normal((m, L)) * 0.1 + rng.standard_normal((n, L)) > 0
    Y = Y.astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ErasableMultiOutputClassifier(
            ErasableLogisticRegression(max_iter=30)
        ).fit(X, Y)
    return model, X, Y


def multioutput_rows(L, m, ks, repeats, dtype):
    """Batched multi-output requests against the batched floor, one fit per dtype.

    Rows: the default (lazy factors: a one-row request writes nothing of the
    stack's size), the eager downdate (``FOLD_RANK = 0``: every request writes a
    new stack), and a sequence of one-row requests that crosses a fold. The
    per-output path (the wrapper before batching) is timed alongside.
    """
    from sklearn_ssse import _stacked, multioutput

    model, X, Y = _fit_multioutput(L, m, dtype)
    A = model.estimators_[0].curvature_inverse_.stack.base
    name = np.dtype(dtype).name
    per_output_path = multioutput.batched_forget
    rows = []
    for k in ks:
        Xk, Yk = X[:k].copy(), Y[:k].copy()
        ops = [
            request_operands(e, Xk, Yk[:, j]) for j, e in enumerate(model.estimators_)
        ]
        U = np.stack([U for _, U, _ in ops])
        g = np.stack([g for _, _, g in ops])

        def looped(Xk=Xk, Yk=Yk):
            multioutput.batched_forget = lambda *a, **kw: None
            try:
                copy.copy(model).partial_forget(Xk, Yk)
            finally:
                multioutput.batched_forget = per_output_path

        def eager(Xk=Xk, Yk=Yk):
            _stacked.FOLD_RANK = 0
            try:
                copy.copy(model).partial_forget(Xk, Yk)
            finally:
                _stacked.FOLD_RANK = None

        t = interleaved(
            {
                "request": lambda Xk=Xk, Yk=Yk: copy.copy(model).partial_forget(Xk, Yk),
                "eager": eager,
                "floor": lambda U=U, g=g: batched_floor(A, U, g),
                "lazy_floor": lambda U=U, g=g: batched_floor(A, U, g, eager=False),
                "looped": looped,
            },
            repeats,
        )
        label = f"{L} × {m}, {name}, {k} row{'s' if k > 1 else ''}"
        rows.append((label, t))
    # 70 one-row requests in sequence (a fold at the 65th), mean per request.
    n_seq = 70

    def sequence():
        current = copy.copy(model)
        for i in range(n_seq):
            current.partial_forget(X[i : i + 1], Y[i : i + 1])

    ops = [
        request_operands(e, X[:1], Y[:1, j]) for j, e in enumerate(model.estimators_)
    ]
    U1 = np.stack([U for _, U, _ in ops])
    g1 = np.stack([g for _, _, g in ops])
    t = interleaved(
        {
            "sequence": sequence,
            "floor": lambda: [batched_floor(A, U1, g1) and None for _ in range(n_seq)],
        },
        max(1, repeats // 3),
    )
    t = {key: value / n_seq for key, value in t.items()}
    label = f"{L} × {m}, {name}, {n_seq} one-row requests in sequence (mean)"
    rows.append((label, t))
    return rows


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
    bare = copy.copy(model)
    bare._certificate_supported = lambda: False  # the build without the certificate
    M = np.eye(P) * 2.0

    def inversion():
        spd_inverse(M.copy(), overwrite=True)

    t = interleaved(
        {
            "build": lambda: copy.copy(model)._fit_erasure_state(X, yi, np.ones(n)),
            "bare": lambda: copy.copy(bare)._fit_erasure_state(X, yi, np.ones(n)),
            "syrk": lambda: syrk(1.0, Z, trans=1),
            "inversion": inversion,
        },
        repeats,
    )
    kind = "binary" if n_classes == 2 else f"multinomial, {n_classes} classes"
    return f"{kind}, n = {n}, P = {P}", t


def mlp_rows(n, options):
    """Fit times of the erasable MLP per option, the plain fit's, and fidelity."""
    rng = np.random.default_rng(0)
    X = rng.random((n, 784))
    y = rng.integers(0, 10, size=n)
    X[np.arange(n), y * 78] += 3.0  # something to learn
    params = dict(hidden_layer_sizes=(64,), max_iter=20, random_state=0)
    forget = rng.choice(n, size=max(1, n // 100), replace=False)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        MLPClassifier(**params).fit(X, y)
        out["plain"] = time.perf_counter() - start
        steps = {}
        for name, extra in options.items():
            start = time.perf_counter()
            model = ErasableMLPClassifier(**params, **extra).fit(X, y)
            elapsed = time.perf_counter() - start
            before = model._get_flat_params().copy()
            model.partial_forget(X[forget], y[forget])
            steps[name] = model._get_flat_params() - before
            out[name] = elapsed
    reference = steps[next(iter(options))]
    fidelity = {
        name: float(np.linalg.norm(step - reference) / np.linalg.norm(reference))
        for name, step in steps.items()
    }
    return out, fidelity


MLP_OPTIONS = {
    "block_size=1024 (default)": {},
    "block_size=256": {"block_size": 256},
    "block_size=64": {"block_size": 64},
    "block_size=1 (diagonal)": {"block_size": 1},
}


def _ms(seconds):
    return f"{seconds * 1e3:.2f} ms"


def main(quick, threads):
    r = 3 if quick else 15
    with threadpool_limits(threads):
        requests = [
            binary_rows(1000, 1, 3 * r),
            binary_rows(1000, 100, r),
            binary_rows(300, 100, r),
        ]
        multi = []
        for dtype in (np.float32, np.float64):
            multi += multioutput_rows(
                8 if quick else 40, 512, (1, 100), max(3, r // 3), dtype
            )
    # The machine's cores (the absolute targets are per machine): the
    # float32 multi-output rows again with every core's BLAS thread.
    cores = len(os.sched_getaffinity(0))
    multi_all = []
    if cores > threads:
        with threadpool_limits(cores):
            multi_all = multioutput_rows(
                8 if quick else 40, 512, (1, 100), max(3, r // 3), np.float32
            )
    with threadpool_limits(threads):
        n = 4000 if quick else 20000
        builds = [build_row(n, 400, 2, max(3, r // 5)), build_row(n, 300, 3, 3)]
        mlp_n = 300 if quick else 1000
        options = MLP_OPTIONS
        if quick:  # the default blocks take minutes: a smaller reference
            options = {
                "block_size=64 (quick run's reference)": {"block_size": 64},
                "block_size=1 (diagonal)": {"block_size": 1},
            }
        mlp, fidelity = mlp_rows(mlp_n, options)

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
        "**Requests** (`partial_forget`, default Hessian, leave-k-out, full block; "
        "binary rows: a stream of requests of new rows on one model). Floor: the "
        "request's own linear algebra as the library publishes it, in plain "
        "numpy/BLAS (one product `A [U, g]`, or of `A` with the rows alone up to "
        "four rows, whose span holds `g`; the `k × k` Cholesky factor, the "
        "triangular solve, the new factor columns written, and the fold "
        "(`A + V Vᵀ` written once) when the accumulated rank would pass `d/8`, "
        "on the same stream as the library's; eager above rank `d/8`). With "
        "certificate: the floor plus the certificate's own pass (one product of "
        "its `d × d` Gram with the step). Eager floor: one read and one `d × d` "
        "write of the inverse, every request. No certificate: the same stream on "
        "a state without the data-free certificate.",
        "",
        "| request | `partial_forget` | floor | **request / floor** | best / best "
        "| request / floor with certificate | no certificate / floor "
        "| eager floor / floor | plain numpy / floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in requests:
        with_cert = t["floor"] + t["certificate_pass"]
        lines.append(
            f"| {name} | {_ms(t['request'])} | {_ms(t['floor'])} | "
            f"**{t['request'] / t['floor']:.2f}** | "
            f"{t['request_best'] / t['floor_best']:.2f} | "
            f"{t['request'] / with_cert:.2f} | "
            f"{t['bare'] / t['floor']:.2f} | {t['eager'] / t['floor']:.2f} | "
            f"{t['naive'] / t['floor']:.2f} |".replace("nan", "–")
        )
    lines += [
        "",
        "**Multi-output requests** (`ErasableMultiOutputClassifier` over binary "
        "`ErasableLogisticRegression`s, the paper's CelebA shape; batched over "
        "outputs: stacked inverses, lazy Woodbury factors folded past rank P/8). "
        "Floor: the same batched linear algebra in plain numpy (one stacked product "
        "against `[U, g]`, stacked Cholesky, one write of the downdated stack); "
        "lazy floor: the same without that write. Eager: the request with "
        "`FOLD_RANK = 0` (a new stack every request). Per-output: the wrapper's "
        "loop over outputs (the path before batching, still used outside the "
        "batched case). The sequence row crosses a fold (at the 65th request) and "
        "divides by the number of requests.",
        "",
        "| request | `partial_forget` | floor | **request / floor** | best / best "
        "| lazy floor | eager request | per-output path |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in multi:
        if "sequence" in name:
            lines.append(
                f"| {name} | {t['sequence'] * 1e3:.2f} ms | {t['floor'] * 1e3:.2f} ms "
                f"| **{t['sequence'] / t['floor']:.2f}** | "
                f"{t['sequence_best'] / t['floor_best']:.2f} | | | |"
            )
            continue
        lines.append(
            f"| {name} | {t['request'] * 1e3:.2f} ms | {t['floor'] * 1e3:.2f} ms | "
            f"**{t['request'] / t['floor']:.2f}** | "
            f"{t['request_best'] / t['floor_best']:.2f} | "
            f"{t['lazy_floor'] * 1e3:.2f} ms | {t['eager'] * 1e3:.2f} ms | "
            f"{t['looped'] * 1e3:.2f} ms |"
        )
    if multi_all:
        lines += [
            "",
            f"The float32 multi-output rows again with {cores} BLAS threads (every "
            "core of this machine; more exposed to other tenants):",
            "",
            "| request | `partial_forget` | floor | **request / floor** | "
            "best / best | lazy floor | eager request | per-output path |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, t in multi_all:
            if "sequence" in name:
                lines.append(
                    f"| {name} | {t['sequence'] * 1e3:.2f} ms | "
                    f"{t['floor'] * 1e3:.2f} ms | "
                    f"**{t['sequence'] / t['floor']:.2f}** | "
                    f"{t['sequence_best'] / t['floor_best']:.2f} | | | |"
                )
                continue
            lines.append(
                f"| {name} | {t['request'] * 1e3:.2f} ms | "
                f"{t['floor'] * 1e3:.2f} ms | **{t['request'] / t['floor']:.2f}** | "
                f"{t['request_best'] / t['floor_best']:.2f} | "
                f"{t['lazy_floor'] * 1e3:.2f} ms | {t['eager'] * 1e3:.2f} ms | "
                f"{t['looped'] * 1e3:.2f} ms |"
            )
    lines += [
        "",
        "**Curvature build** (`_fit_erasure_state`: curvature blocks, inversion, "
        "gradient sums, the certificate's Gram) against one `syrk` of the same "
        "shape (`n × P`). The certificate's Gram is a second `syrk` (of "
        "`n × width`, with other weights than the curvature's), and the inversion "
        "(`P³/3` Cholesky and `P³/3` more for the inverse) is work a `syrk` does "
        "not do: both are shown apart.",
        "",
        "| build | build | syrk | **build / syrk** | best / best | build without "
        "certificate / syrk | inversion / syrk |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, t in builds:
        lines.append(
            f"| {name} | {t['build']:.3f} s | {t['syrk']:.3f} s | "
            f"**{t['build'] / t['syrk']:.2f}** | "
            f"{t['build_best'] / t['syrk_best']:.2f} | "
            f"{t['bare'] / t['syrk']:.2f} | {t['inversion'] / t['syrk']:.2f} |"
        )
    lines += [
        "",
        f"**MLP fit**, 784 inputs, 64 hidden units, {mlp_n} rows, 20 epochs "
        "(Gauss–Newton curvature): `ErasableMLPClassifier.fit` against "
        f"`MLPClassifier.fit` ({mlp['plain']:.2f} s), one run each. Step "
        "distance: `‖δ − δ_default‖ / ‖δ_default‖` for one request of 1 % of the "
        "rows (the first option is the reference).",
        "",
        "| `block_size` | fit | **fit / plain fit** | step distance |",
        "|---|---|---|---|",
    ]
    for name in options:
        lines.append(
            f"| {name} | {mlp[name]:.2f} s | **{mlp[name] / mlp['plain']:.1f}×** | "
            f"{fidelity[name]:.3f} |"
        )
    lines.append("")
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
