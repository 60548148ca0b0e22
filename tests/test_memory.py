"""Knowing the erasure state's memory before allocating it."""

import tracemalloc
from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_ssse import ErasableLogisticRegression, _memory
from sklearn_ssse._memory import (
    CurvatureMemoryError,
    MemoryEstimate,
    check_memory_budget,
    check_outputs_memory_budget,
    estimate_block_diagonal,
    format_bytes,
    physical_memory,
    resolve_budget,
)
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier
from sklearn_ssse.neural_network import ErasableMLPClassifier


def _data(n=300, m=40, n_classes=2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m)).astype(dtype)
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    if n_classes > 2:
        y = np.digitize(X[:, 0] + rng.normal(size=n), [-0.5, 0.5][: n_classes - 1])
    return X, y


def test_resolve_budget():
    assert resolve_budget(None) is None
    assert resolve_budget(1) == 2**20
    assert resolve_budget(0.5) == 2**19
    total = physical_memory()
    expected = (total or _memory.FALLBACK_PHYSICAL_BYTES) // 2
    assert abs(resolve_budget("auto") - expected) <= 1
    with pytest.raises(ValueError, match="memory_budget"):
        resolve_budget("all")


def test_auto_budget_falls_back_where_the_system_does_not_say():
    with (
        mock.patch.object(_memory.os, "sysconf", side_effect=ValueError),
        mock.patch("builtins.open", side_effect=OSError),
    ):
        assert physical_memory() is None
        assert resolve_budget("auto") == _memory.FALLBACK_PHYSICAL_BYTES // 2


def test_format_bytes():
    assert format_bytes(12) == "12 bytes"
    assert format_bytes(3 * 2**20) == "3 MiB"
    assert format_bytes(1.5 * 2**30) == "1.5 GiB"
    assert format_bytes(300 * 2**30) == "300 GiB"


def test_estimate_counts_the_blocks_exactly():
    bounds = [(0, 100), (100, 150)]
    estimate = estimate_block_diagonal(bounds, np.float32, n_samples=1000, n_classes=2)
    blocks = (100**2 + 50**2) * 4
    # the 100-block accumulates up to 100 // 8 factor columns before compaction
    factors = 100 * 12 * 4
    assert blocks + factors <= estimate.stored_bytes <= blocks + factors + 10 * 150 * 4
    assert estimate.fit_peak_bytes >= estimate.stored_bytes
    # a request holds the old and the new blocks
    assert estimate.request_peak_bytes >= 2 * blocks
    assert estimate.peak_bytes == max(
        estimate.fit_peak_bytes, estimate.request_peak_bytes
    )
    # parallel groups each hold partial blocks
    parallel = estimate_block_diagonal(
        bounds, np.float32, n_samples=1000, n_classes=2, n_groups=3
    )
    assert parallel.fit_peak_bytes - estimate.fit_peak_bytes == 3 * blocks


@pytest.mark.parametrize(
    "params, n_classes",
    [
        ({}, 2),
        ({"block_size": "class"}, 3),
        ({"block_size": 50, "class_weight": "balanced"}, 3),
    ],
)
def test_estimate_bounds_what_fit_and_a_request_allocate(params, n_classes):
    """Stored bytes match the fitted state; measured peaks stay below the
    estimates (tracemalloc sees numpy's allocations)."""
    X, y = _data(n=400, m=120, n_classes=n_classes)
    model = ErasableLogisticRegression(curvature="hessian", **params)
    estimate = check_memory_budget(model, X, y)
    model.fit(X, y)
    assert model.curvature_inverse_.nbytes <= estimate.stored_bytes
    assert estimate.stored_bytes <= 1.2 * model.curvature_inverse_.nbytes + 2**16
    yi = np.searchsorted(model.classes_, y)
    tracemalloc.start()
    model._fit_erasure_state(X, yi, np.ones(len(y)))
    _, fit_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    model.partial_forget(X[:150], y[:150])  # high rank: the dense path
    _, request_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert fit_peak <= estimate.fit_peak_bytes
    assert request_peak - before <= estimate.request_peak_bytes


def test_fit_refuses_before_the_solver_runs():
    X, y = _data(n=50, m=600)
    # (an explicit structure: "auto" falls back to an approximation that fits)
    model = ErasableLogisticRegression(memory_budget=2, curvature_structure="blocks")
    with mock.patch.object(LogisticRegression, "fit") as solver:
        with pytest.raises(CurvatureMemoryError) as info:
            model.fit(X, y)
    solver.assert_not_called()
    assert isinstance(info.value, ValueError)
    assert not hasattr(model, "coef_")
    message = str(info.value)
    assert "block_size=None" in message and "memory_budget=2 MiB" in message
    assert "Options that fit" in message and "block_size=" in message


def test_the_options_named_fit():
    X, y = _data(n=200, m=500)
    budget = 5  # MiB
    with pytest.raises(CurvatureMemoryError) as info:
        ErasableLogisticRegression(
            memory_budget=budget, curvature_structure="blocks"
        ).fit(X, y)
    message = str(info.value)
    suggested = int(message.split("Options that fit:\n  - block_size=")[1].split()[0])
    model = ErasableLogisticRegression(memory_budget=budget, block_size=suggested)
    model.fit(X, y).partial_forget(X[:3], y[:3])
    # the next power of two would not have fitted
    with pytest.raises(CurvatureMemoryError):
        ErasableLogisticRegression(memory_budget=budget, block_size=2 * suggested).fit(
            X, y
        )


def test_float32_is_offered_when_it_fits():
    X, y = _data(n=100, m=700)
    estimate = check_memory_budget(ErasableLogisticRegression(memory_budget=None), X, y)
    budget = 0.75 * estimate.peak_bytes / 2**20  # float32 halves it
    with pytest.raises(CurvatureMemoryError, match=r"float32") as info:
        ErasableLogisticRegression(
            memory_budget=budget, curvature_structure="blocks"
        ).fit(X, y)
    assert "X.astype(np.float32)" in str(info.value)
    model = ErasableLogisticRegression(memory_budget=budget)
    model.fit(X.astype(np.float32), y)
    assert model.curvature_inverse_.dtype == np.float32


def test_sparse_and_dataframe_shapes_are_read_without_conversion():
    pd = pytest.importorskip("pandas")
    X, y = _data(n=60, m=30)
    model = ErasableLogisticRegression()
    dense = check_memory_budget(model, X, y)
    assert check_memory_budget(model, sp.csr_matrix(X), y) == dense
    frame = pd.DataFrame(X.astype(np.float32))
    assert check_memory_budget(model, frame, y).dtype == np.float32
    assert check_memory_budget(model, X.tolist(), list(y)) == dense
    # unreadable input: fit's own validation speaks
    assert check_memory_budget(model, "not an array", y) is None
    assert check_memory_budget(model, X, np.zeros(60)) is None  # one class


def test_no_budget_skips_the_check():
    X, y = _data(n=50, m=600)
    ErasableLogisticRegression(memory_budget=None).fit(X, y)


def test_memory_budget_is_validated():
    X, y = _data()
    for bad in ["lots", 0, -1]:
        with pytest.raises(InvalidParameterError, match="memory_budget"):
            ErasableLogisticRegression(memory_budget=bad).fit(X, y)


def test_first_candidate_that_fits_is_chosen():
    """An estimator may offer several structures; the first that fits wins."""
    X, y = _data()

    def estimate(name, peak):
        return MemoryEstimate(name, {"curvature_structure": name}, peak, peak, peak)

    class Offering(ErasableLogisticRegression):
        def _curvature_candidates(self, maths, dtype, n_samples, n_classes, X=None):
            return [estimate("dense", 10 * 2**20), estimate("scalable", 2**20)]

    chosen = check_memory_budget(Offering(memory_budget=5), X, y)
    assert chosen.structure == "scalable"
    with pytest.raises(CurvatureMemoryError, match="dense.*\n.*scalable"):
        check_memory_budget(Offering(memory_budget=0.5), X, y)


def test_verbose_reports_estimate_and_progress(capsys):
    X, y = _data(n=200, m=20, n_classes=3)
    ErasableLogisticRegression(verbose=2, curvature="hessian").fit(X, y)
    out = capsys.readouterr().out
    assert "[ErasableLogisticRegression] erasure state: block_size=None" in out
    assert "[curvature] 200/200 rows (100%)" in out
    assert "inverting 1 block(s)" in out


def test_mlp_refuses_a_network_that_does_not_fit():
    X, y = _data(n=60, m=50)
    mlp = ErasableMLPClassifier(
        hidden_layer_sizes=(400,), block_size=None, memory_budget=16, max_iter=5
    )
    with pytest.raises(CurvatureMemoryError, match="ErasableMLPClassifier"):
        mlp.fit(X, y)
    assert not hasattr(mlp, "coefs_")
    estimate = check_memory_budget(mlp.set_params(memory_budget=None), X, y)
    n_params = 50 * 400 + 400 + 400 + 1
    assert estimate.stored_bytes >= n_params**2 * 8


def test_multioutput_checks_the_outputs_together():
    X, _ = _data(n=100, m=300)
    rng = np.random.default_rng(0)
    Y = (rng.uniform(size=(100, 8)) < 0.5).astype(int)
    one = check_memory_budget(ErasableLogisticRegression(), X, Y[:, 0])
    together = check_outputs_memory_budget(ErasableLogisticRegression(), X, Y)
    assert together.stored_bytes == 8 * one.stored_bytes
    budget = 5 * one.peak_bytes / 2**20  # one output fits, eight do not
    base = ErasableLogisticRegression(memory_budget=budget)
    model = ErasableMultiOutputClassifier(base)
    with mock.patch.object(LogisticRegression, "fit") as solver:
        with pytest.raises(CurvatureMemoryError) as info:
            model.fit(X, Y)
    solver.assert_not_called()
    assert not hasattr(model, "estimators_")
    message = str(info.value)
    assert message.startswith("ErasableMultiOutputClassifier")
    assert "8 outputs" in message and "estimator__block_size=" in message
    assert "float32" in message
    suggested = int(message.split("estimator__block_size=")[2].split()[0])
    base.set_params(block_size=suggested)
    ErasableMultiOutputClassifier(base).fit(X, Y)
