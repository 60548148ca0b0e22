"""The build's row groups and the multi-output work, through joblib's backends.

The Dask tests need the optional extra ``dask`` (``pip install
sklearn-ssse[dask]``) and skip without it.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from joblib import parallel_config
from numpy.testing import assert_allclose
from sklearn.datasets import make_classification, make_multilabel_classification

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._maths import n_row_groups
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier
from sklearn_ssse.neural_network import ErasableMLPClassifier


def _problem(n_classes, sparse):
    X, y = make_classification(
        n_samples=120,
        n_features=12,
        n_informative=6,
        n_classes=n_classes,
        random_state=0,
    )
    if sparse:
        X[np.abs(X) < 0.8] = 0
        X = sp.csr_matrix(X)
    return X, y


def _inverse(model):
    return model.curvature_inverse_.to_dense()


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_row_groups_follow_the_joblib_context(n_jobs):
    assert n_row_groups(100) == 1
    with parallel_config(n_jobs=n_jobs):
        assert n_row_groups(100) == n_jobs
        assert n_row_groups(100, multiple=60) == 2  # at most one per batch
        assert n_row_groups(1) == 1


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    "params",
    [
        {"curvature": "hessian"},
        {"curvature": "fisher", "block_size": 5},
        {"curvature": "fisher", "fisher_batch_size": 7, "random_state": 0},
    ],
)
def test_parallel_build_equals_the_sequential_one(n_classes, sparse, params):
    X, y = _problem(n_classes, sparse)
    reference = ErasableLogisticRegression(**params).fit(X, y)
    with parallel_config(n_jobs=3, prefer="threads"):
        model = ErasableLogisticRegression(**params).fit(X, y)
    assert_allclose(_inverse(model), _inverse(reference), rtol=1e-10, atol=1e-12)
    assert_allclose(model.coef_, reference.coef_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_parallel_mlp_build_equals_the_sequential_one():
    X, y = _problem(3, False)
    params = {"hidden_layer_sizes": (5,), "solver": "lbfgs", "random_state": 0}
    reference = ErasableMLPClassifier(**params).fit(X, y)
    with parallel_config(n_jobs=2):
        model = ErasableMLPClassifier(**params).fit(X, y)
    # the inverse of a network's Fisher amplifies the sums' rounding
    assert_allclose(_inverse(model), _inverse(reference), rtol=1e-6)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("sparse", [False, True])
def test_build_runs_on_dask_workers(dask_client, n_classes, sparse):
    from distributed import get_task_stream

    X, y = _problem(n_classes, sparse)
    reference = ErasableLogisticRegression(curvature="hessian").fit(X, y)
    with get_task_stream(dask_client) as stream:
        with parallel_config(backend="dask"):
            model = ErasableLogisticRegression(curvature="hessian").fit(X, y)
    assert len(stream.data) >= 2  # one task per group of rows, on the workers
    assert_allclose(_inverse(model), _inverse(reference), rtol=1e-10, atol=1e-12)
    model.partial_forget(X[:5], y[:5])
    reference.partial_forget(X[:5], y[:5])
    assert_allclose(model.coef_, reference.coef_, rtol=1e-8, atol=1e-10)


def test_multioutput_fit_and_requests_on_dask(dask_client):
    from distributed import get_task_stream

    X, Y = make_multilabel_classification(
        n_samples=80, n_features=10, n_classes=3, random_state=0
    )
    base = ErasableLogisticRegression(curvature="hessian")
    reference = ErasableMultiOutputClassifier(base).fit(X, Y)
    reference.partial_forget(X[:6], Y[:6])
    with parallel_config(backend="dask"):
        with get_task_stream(dask_client) as stream:
            model = ErasableMultiOutputClassifier(base).fit(X, Y)
        assert len(stream.data) >= 3  # the outputs' fits, on the workers
        with get_task_stream(dask_client) as stream:
            # requests and predictions stay in local threads, with the state
            model.partial_forget(X[:6], Y[:6])
            predicted = model.predict(X)
        assert len(stream.data) == 0
    for got, expected in zip(model.estimators_, reference.estimators_):
        assert_allclose(got.coef_, expected.coef_, rtol=1e-8, atol=1e-10)
        assert_allclose(_inverse(got), _inverse(expected), rtol=1e-8, atol=1e-10)
    assert_allclose(predicted, reference.predict(X))
