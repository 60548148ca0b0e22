"""Smoke test of ``benchmarks/compare.py`` on its quick configuration (seconds)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("_compare_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _run(compare, out, *datasets):
    argv = ["--quick", "--output-dir", str(out), "--datasets", *datasets]
    return compare.main(argv)


@pytest.fixture(scope="module")
def quick(compare, tmp_path_factory):
    # wine: multiclass, a whole class removed (the refit is binary there, so the
    # parameters cannot be compared); diabetes: multi-output, one kind skipped.
    out = tmp_path_factory.mktemp("compare")
    return out, _run(compare, out, "wine", "diabetes_attributes")


def test_quick_run_writes_a_consistent_report(compare, quick):
    out, table = quick
    text = (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 10_000
    assert "## Findings" in text and "Quick run" in text
    assert "**all of one attribute**: skipped" in text
    for method in compare.METHODS:
        assert f"| {method.name} |" in text

    settings = {(d, k) for _, d, k, _ in table}
    assert len(settings) == 3 + 2
    for criterion in compare.CRITERIA:
        for dataset, kind in settings:
            cell = {
                m.name: table[criterion, dataset, kind, m.name] for m in compare.METHODS
            }
            refit = cell.pop("retrain (reference)")
            original = cell.pop("original (no erasure)")
            ideal = 1.0 if dataset == "diabetes_attributes" else 0.0
            assert np.isnan(refit["behaviour"]) or refit["behaviour"] == ideal
            comparable = not (dataset == "wine" and kind == "all of a group")
            assert (refit["distance"] == 0.0) == comparable
            assert (original["distance"] == 1.0) == comparable
            assert refit["time"] > 0 and np.isnan(original["time"])
            for entry in cell.values():
                assert entry["time"] > 0
                assert entry["value"] is None or entry["value"] > 0
                if kind == "all of a group":  # the forgotten class is never predicted
                    assert entry["forgotten"] == 0


def test_results_depend_on_the_seed_only(compare, quick, tmp_path, capsys):
    # Running one data set alone gives the same numbers (times apart).
    _, table = quick
    alone = _run(compare, tmp_path, "wine")
    capsys.readouterr()
    assert alone.keys() == {key for key in table if key[1] == "wine"}
    for key, entry in alone.items():
        for name, value in entry.items():
            if name != "time":
                np.testing.assert_equal(value, table[key][name], err_msg=str(key))
