"""The alternatives to SSSE: definitions, seeding, and that they leave inputs alone."""

import copy
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_wine, make_multilabel_classification
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression, ErasableMultiOutputClassifier
from sklearn_ssse.baselines import (
    gradient_ascent_update,
    retrain,
    scrubbing_update,
    ssse_update,
)


@pytest.fixture(scope="module")
def data():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _params(model):
    return np.hstack([model.coef_, model.intercept_[:, None]]).ravel()


def test_ssse_update_is_partial_forget_on_a_copy(data):
    X, y = data
    model = ErasableLogisticRegression().fit(X, y)
    state = pickle.dumps(model.__dict__)
    updated = ssse_update(model, X[:4], y[:4])
    assert pickle.dumps(model.__dict__) == state
    expected = copy.deepcopy(model).partial_forget(X[:4], y[:4])
    assert_array_equal(_params(updated), _params(expected))
    assert updated.n_forgotten_ == 4


def test_gradient_ascent_is_one_step_up_the_forgotten_loss(data):
    X, y = data
    model = ErasableLogisticRegression(C=2.0).fit(X, y)
    model.residual_gradient_[:] = 0  # isolate the step from the solver's leftover
    theta = _params(model)
    updated = gradient_ascent_update(model, X[:5], y[:5], learning_rate=0.1)
    maths = model._erasure_maths()
    sums = maths.gradient_sums(
        X[:5],
        np.searchsorted(model.classes_, y[:5]),
        np.ones(5),
        theta,
        np.ones(3, dtype=bool),
        3,
    )
    assert_allclose(_params(updated), theta + 0.1 * 2.0 * sums.sum(axis=0))
    # the rows leave the stored curvature all the same
    ssse = ssse_update(model, X[:5], y[:5])
    assert_allclose(
        updated.curvature_inverse_.to_dense(), ssse.curvature_inverse_.to_dense()
    )


def test_scrubbing_without_noise_is_diagonal_ssse(data):
    X, y = data
    model = ErasableLogisticRegression(block_size=1).fit(X, y)
    quiet = scrubbing_update(model, X[:4], y[:4], noise_scale=0.0)
    assert_allclose(_params(quiet), _params(ssse_update(model, X[:4], y[:4])))


def test_scrubbing_noise_is_seeded_and_scaled_by_the_diagonal_fisher(data):
    X, y = data
    model = ErasableLogisticRegression(block_size=1).fit(X, y)
    a = scrubbing_update(model, X[:4], y[:4], noise_scale=0.5, random_state=0)
    b = scrubbing_update(model, X[:4], y[:4], noise_scale=0.5, random_state=0)
    assert_array_equal(_params(a), _params(b))
    quiet = scrubbing_update(model, X[:4], y[:4], noise_scale=0.0)
    noise = _params(a) - _params(quiet)
    diagonal = np.concatenate([blk.ravel() for blk in a.curvature_inverse_.inverses])
    xi = np.random.RandomState(0).standard_normal(diagonal.shape)
    assert_allclose(noise, 0.5 * diagonal**0.25 * xi)
    only_noise = scrubbing_update(
        model, X[:4], y[:4], noise_scale=0.5, random_state=0, newton_step=False
    )
    assert_allclose(_params(only_noise) - _params(model), noise)


def test_scrubbing_needs_a_diagonal_curvature(data):
    X, y = data
    model = ErasableLogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="block_size=1"):
        scrubbing_update(model, X[:4], y[:4], noise_scale=0.1)


def test_retrain_is_a_clone_fitted_on_the_rest(data):
    X, y = data
    model = ErasableLogisticRegression().fit(X, y)
    refit = retrain(model, X[4:], y[4:])
    assert_array_equal(refit.coef_, clone(model).fit(X[4:], y[4:]).coef_)
    assert refit is not model


def test_baselines_validate_their_parameters(data):
    X, y = data
    model = ErasableLogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="learning_rate"):
        gradient_ascent_update(model, X[:2], y[:2], learning_rate=-1.0)
    with pytest.raises(ValueError, match="noise_scale"):
        scrubbing_update(model, X[:2], y[:2], noise_scale=-1.0)


def test_baselines_update_every_output_of_a_multi_output_model():
    X, Y = make_multilabel_classification(
        n_samples=80, n_features=6, n_classes=3, random_state=0
    )
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression(block_size=1)).fit(
        X, Y
    )
    state = pickle.dumps(model)
    for update in (
        lambda: ssse_update(model, X[:5], Y[:5]),
        lambda: gradient_ascent_update(model, X[:5], Y[:5], learning_rate=0.01),
        lambda: scrubbing_update(model, X[:5], Y[:5], noise_scale=0.1, random_state=0),
    ):
        updated = update()
        assert updated.n_forgotten_ == 5
        assert all(est.n_forgotten_ == 5 for est in updated.estimators_)
        assert pickle.dumps(model) == state
    model.set_params(estimator__forget_scale=0.1)  # read from the template
    expected = copy.deepcopy(model).partial_forget(X[:5], Y[:5])
    got = ssse_update(model, X[:5], Y[:5])
    for e, g in zip(expected.estimators_, got.estimators_):
        assert_allclose(g.coef_, e.coef_)
