"""The fixtures scikit-learn's own test suite relies on (from ``sklearn.conftest``).

``global_random_seed`` is parametrized as in scikit-learn (42 unless
``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` says otherwise); ``global_dtype`` is float32 and
float64.
"""

import os

import pytest
from sklearn.conftest import global_dtype, pytest_generate_tests  # noqa: F401

SLOW_ENV = "SKLEARN_SSSE_SLOW_TESTS"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"slow: a slow scikit-learn test; runs when {SLOW_ENV}=1"
    )


def pytest_collection_modifyitems(config, items):
    """Skip the slow tests (make_swapped.SLOW) unless SKLEARN_SSSE_SLOW_TESTS=1."""
    if os.environ.get(SLOW_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"slow; set {SLOW_ENV}=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
