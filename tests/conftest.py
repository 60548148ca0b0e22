"""Fixtures shared by the test modules."""

import pytest
from _data import scaled
from sklearn.datasets import load_breast_cancer, load_wine


@pytest.fixture(scope="module")
def binary_data():
    return scaled(load_breast_cancer, 200)


@pytest.fixture(scope="module")
def multiclass_data():
    return scaled(load_wine)
