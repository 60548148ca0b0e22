"""ErasableLogisticRegression on a GPU (PyTorch, array API) against NumPy on the CPU.

One run measures, at n = 200 000 rows and d = 2 000 features (binary, float32 by
default), on the same machine:

- ``fit``: ``LogisticRegression.fit`` and ``ErasableLogisticRegression.fit``;
- the curvature build alone (the erasure state, after the solver);
- requests: ``partial_forget`` of 1 row and of 100 rows (medians), and their ratio
  to the refit they replace;

once with NumPy arrays on the CPU and once with PyTorch tensors on CUDA under
``sklearn.config_context(array_api_dispatch=True)``, and checks that both give the
same coefficients after the requests. GPU timings synchronise the device before
reading the clock.

Needs PyTorch with CUDA and a CUDA device: without them it says so and exits
without writing anything. Run ``python benchmarks/bench_gpu.py`` (a few minutes;
``--quick`` for n = 20 000, d = 500). Writes ``benchmarks/results/gpu.md``.
"""

import os

# SciPy reads this once, at import; scikit-learn's array API dispatch needs it.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from sklearn import config_context  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from sklearn_ssse import ErasableLogisticRegression  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "gpu.md"


def cuda_or_exit():
    try:
        import torch
    except ImportError:
        print("bench_gpu: PyTorch is not installed; no CUDA device to benchmark.")
        sys.exit(0)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device (torch.cuda.is_available() is False).")
        sys.exit(0)
    return torch


def make_data(n, d, dtype, seed=0):
    """A standardised binary problem, generated in blocks (no n × d float64 copy)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32).astype(dtype, copy=False)
    w = (rng.standard_normal(d) / np.sqrt(d)).astype(dtype)
    logits = (X @ w).astype(np.float64) * 3
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    return X, y


class Clock:
    def __init__(self, sync):
        self.sync = sync

    def __call__(self, function, *args, **kwargs):
        self.sync()
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.sync()
        return time.perf_counter() - start, result


def measure(X, y, clock, context, params, n_requests):
    """Fit, build and request times for one backend."""
    out = {}
    with context():
        out["lr_fit"], _ = clock(LogisticRegression(**params).fit, X, y)
        out["fit"], model = clock(ErasableLogisticRegression(**params).fit, X, y)
        # The build alone: the erasure state at the fitted parameters.
        out["build"], _ = clock(_rebuild, model, X, y)
        ones, hundreds = [], []
        start = 0
        for _ in range(n_requests):
            t, _ = clock(
                model.partial_forget, X[start : start + 1], y[start : start + 1]
            )
            ones.append(t)
            start += 1
        for _ in range(n_requests):
            rows = slice(start, start + 100)
            t, _ = clock(model.partial_forget, X[rows], y[rows])
            hundreds.append(t)
            start += 100
        out["one"] = float(np.median(ones))
        out["hundred"] = float(np.median(hundreds))
        out["model"] = model
    return out


def _rebuild(model, X, y):
    """The erasure state again, as ``fit`` builds it after the solver (y is 0/1)."""
    from sklearn.utils.validation import _check_sample_weight

    sample_weight = _check_sample_weight(None, X, dtype=X.dtype)
    y = y.cpu().numpy() if hasattr(y, "cpu") else y  # class indices, on the host
    model._fit_erasure_state(X, np.asarray(y, dtype=np.intp), sample_weight)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n=20 000, d=500")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    torch = cuda_or_exit()

    n, d = (20_000, 500) if args.quick else (200_000, 2_000)
    dtype = np.dtype(args.dtype)
    X, y = make_data(n, d, dtype)
    params = {"max_iter": 100, "tol": 1e-4}
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    class Plain:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    cpu = measure(X, y, Clock(lambda: None), Plain, params, args.requests)

    device = torch.device("cuda")
    X_gpu = torch.asarray(X, device=device)
    y_gpu = torch.asarray(y, device=device)
    gpu = measure(
        X_gpu,
        y_gpu,
        Clock(torch.cuda.synchronize),
        lambda: config_context(array_api_dispatch=True),
        params,
        args.requests,
    )
    coef_gpu = gpu["model"].coef_.cpu().numpy()
    agreement = float(
        np.abs(coef_gpu - cpu["model"].coef_).max() / np.abs(cpu["model"].coef_).max()
    )
    state = gpu["model"].erasure_state_
    on_gpu = all(
        getattr(a, "device", None) is not None and a.device.type == "cuda"
        for a in [state.point, state.coefficients, *state.curvature.inverses]
    )

    card = torch.cuda.get_device_name(0)
    today = datetime.date.today().isoformat()
    lines = [
        f"# GPU: {card} (PyTorch {torch.__version__}) against NumPy on "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"{today}",
        "",
        f"n = {n:,} rows, d = {d:,} features, binary, {dtype.name}; medians of "
        f"{args.requests} requests. Ratios are against the same backend's refit "
        "(`LogisticRegression.fit`) or against NumPy on the CPU, same run.",
        "",
        "| step | NumPy, CPU | PyTorch, GPU | GPU speed-up |",
        "|---|---|---|---|",
    ]
    for key, label in [
        ("lr_fit", "`LogisticRegression.fit` (the refit)"),
        ("fit", "`ErasableLogisticRegression.fit`"),
        ("build", "curvature build alone"),
        ("one", "`partial_forget`, 1 row"),
        ("hundred", "`partial_forget`, 100 rows"),
    ]:
        lines.append(
            f"| {label} | {_fmt(cpu[key])} | {_fmt(gpu[key])} | "
            f"{cpu[key] / gpu[key]:.1f}× |"
        )
    lines += [
        "",
        "| request against its refit | NumPy, CPU | PyTorch, GPU |",
        "|---|---|---|",
        f"| 1 row | {cpu['lr_fit'] / cpu['one']:,.0f}× faster | "
        f"{gpu['lr_fit'] / gpu['one']:,.0f}× faster |",
        f"| 100 rows | {cpu['lr_fit'] / cpu['hundred']:,.0f}× faster | "
        f"{gpu['lr_fit'] / gpu['hundred']:,.0f}× faster |",
        "",
        f"Coefficients after the requests, GPU against CPU: max relative difference "
        f"{agreement:.1e}. Erasure state on the GPU: {'yes' if on_gpu else 'NO'}.",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _fmt(seconds):
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
