"""forget(): pipelines, searches and bare estimators from the raw rows."""

import copy

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    StandardScaler,
)

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasableMLPClassifier,
    ErasableMultiOutputClassifier,
)
from sklearn_ssse.compose import (
    ExtremeValueError,
    NotTrainingRowsError,
    PreprocessingNotErasedWarning,
    StaleSearchWarning,
    UnsupportedStepError,
    _reexpress,
    forget,
)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[::3, :10], y[::3]  # small and fast
    rng = np.random.default_rng(0)
    S = np.zeros(len(y), dtype=bool)
    S[rng.choice(len(y), 4, replace=False)] = True
    return X, y, S


def _raw(pipe):
    """Parameters of the whole pipeline as a linear function of the raw rows."""
    scaler, clf = pipe[0], pipe[-1]
    scale = getattr(scaler, "scale_", None)
    scale = np.ones(clf.coef_.shape[1]) if scale is None else scale
    mean = scaler.mean_ if getattr(scaler, "with_mean", False) else 0.0
    coef = clf.coef_ / scale
    return np.hstack([coef.ravel(), clf.intercept_ - (coef * mean).sum(axis=1)])


def _distance(updated, original, refit):
    a, b, c = _raw(updated), _raw(original), _raw(refit)
    return np.linalg.norm(a - c) / np.linalg.norm(b - c)


def _pipe(scaler, **kwargs):
    clf = ErasableLogisticRegression(curvature="hessian", tol=1e-10, max_iter=2000)
    return make_pipeline(scaler, clf.set_params(**kwargs))


@pytest.mark.parametrize(
    "scaler",
    [
        StandardScaler(),
        StandardScaler(with_mean=False),
        StandardScaler(with_std=False),
    ],
)
def test_standard_scaler_exact_and_close_to_refit(cancer, scaler):
    X, y, S = cancer
    pipe = _pipe(scaler).fit(X, y)
    original = copy.deepcopy(pipe)
    refit = clone(pipe).fit(X[~S], y[~S])
    assert forget(pipe, X[S], y[S]) is pipe
    for attr in ("mean_", "var_", "scale_"):
        if getattr(refit[0], attr) is None:
            assert getattr(pipe[0], attr) is None
        else:
            assert_allclose(getattr(pipe[0], attr), getattr(refit[0], attr), rtol=1e-10)
    assert pipe[0].n_samples_seen_ == refit[0].n_samples_seen_
    assert pipe[-1].n_forgotten_ == S.sum()
    # The whole pipeline is close to its refit; the old recipe is not.
    ours = _distance(pipe, original, refit)
    assert ours < 0.05
    if scaler.with_std:  # a centring change alone is absorbed by the intercept
        old = copy.deepcopy(original)
        old[-1].partial_forget(old[0].transform(X[S]), y[S])
        assert _distance(old, original, refit) > 2 * ours


def test_standard_scaler_sample_weight(cancer):
    X, y, S = cancer
    w = np.random.default_rng(1).uniform(0.5, 2, len(y))
    pipe = _pipe(StandardScaler()).fit(
        X,
        y,
        standardscaler__sample_weight=w,
        erasablelogisticregression__sample_weight=w,
    )
    refit = clone(pipe).fit(
        X[~S],
        y[~S],
        standardscaler__sample_weight=w[~S],
        erasablelogisticregression__sample_weight=w[~S],
    )
    forget(pipe, X[S], y[S], sample_weight=w[S], standardscaler__sample_weight=w[S])
    assert_allclose(pipe[0].mean_, refit[0].mean_, rtol=1e-10)
    assert_allclose(pipe[0].var_, refit[0].var_, rtol=1e-8)


@pytest.mark.parametrize("family", ["logistic", "mlp"])
def test_reexpression_is_exact(cancer, family):
    """The re-expressed state is the one built directly in the new coordinates."""
    X, y, _ = cancer
    Z = StandardScaler().fit_transform(X)
    if family == "logistic":
        clf = ErasableLogisticRegression(curvature="hessian").fit(Z, y)
    else:
        # A fixed damping: "auto" scales with the curvature's mean diagonal, which
        # a change of coordinates changes, so a direct build would damp differently.
        clf = ErasableMLPClassifier(
            hidden_layer_sizes=(4,),
            solver="lbfgs",
            max_iter=50,
            random_state=0,
            damping=0.1,
        ).fit(Z, y)
    rng = np.random.default_rng(0)
    a = 1 + 0.05 * rng.standard_normal(Z.shape[1])
    c = 0.1 * rng.standard_normal(Z.shape[1])
    Z_new = (Z - c) / a
    moved = copy.deepcopy(clf)
    _reexpress("clf", moved, a, c)
    assert_allclose(moved.predict_proba(Z_new), clf.predict_proba(Z), rtol=1e-10)
    direct = copy.deepcopy(moved)
    direct._fit_erasure_state(Z_new, y, np.ones(len(y)))
    assert_allclose(
        moved.curvature_inverse_.to_dense(),
        direct.curvature_inverse_.to_dense(),
        rtol=1e-6,
        atol=1e-8 * np.abs(direct.curvature_inverse_.to_dense()).max(),
    )
    assert_allclose(moved.residual_gradient_, direct.residual_gradient_, atol=1e-10)
    assert_allclose(
        moved.erasure_state_.data_diagonal,
        direct.erasure_state_.data_diagonal,
        rtol=1e-6,
    )
    assert moved.erasure_state_.row_norm_bound >= direct.erasure_state_.row_norm_bound


def test_multiclass_and_multioutput(cancer):
    X, y = load_iris(return_X_y=True)
    S = np.arange(len(y)) % 25 == 0
    pipe = _pipe(StandardScaler()).fit(X, y)
    original = copy.deepcopy(pipe)
    refit = clone(pipe).fit(X[~S], y[~S])
    forget(pipe, X[S], y[S])
    assert _distance(pipe, original, refit) < 0.1

    Y = np.column_stack([y == 0, y == 2]).astype(int)
    multi = make_pipeline(
        StandardScaler(),
        ErasableMultiOutputClassifier(ErasableLogisticRegression(curvature="hessian")),
    ).fit(X, Y)
    before = multi.predict_proba(X[~S])
    forget(multi, X[S], Y[S])
    assert multi[-1].n_forgotten_ == S.sum()
    assert multi[0].n_samples_seen_ == (~S).sum()
    assert np.abs(multi.predict_proba(X[~S])[0] - before[0]).max() > 0


def test_minmax_and_maxabs(cancer):
    X, y, _ = cancer
    for scaler in (MinMaxScaler(), MaxAbsScaler()):
        pipe = _pipe(scaler).fit(X, y)
        inner = np.flatnonzero(
            np.all((X > X.min(axis=0)) & (np.abs(X) < np.abs(X).max(axis=0)), axis=1)
        )[:3]
        old_scale = pipe[0].scale_.copy()
        forget(pipe, X[inner], y[inner])
        assert_allclose(pipe[0].scale_, old_scale)
        assert pipe[0].n_samples_seen_ == len(y) - 3
        extreme = np.argmax(X[:, 0])
        snapshot = copy.deepcopy(pipe)
        with pytest.raises(ExtremeValueError, match="feature"):
            forget(pipe, X[[extreme]], y[[extreme]])
        assert_allclose(pipe[-1].coef_, snapshot[-1].coef_)
        assert pipe[0].n_samples_seen_ == snapshot[0].n_samples_seen_


def test_transformed_rows_are_detected(cancer):
    X, y, S = cancer
    pipe = _pipe(MinMaxScaler()).fit(X, y)
    with pytest.raises(NotTrainingRowsError, match="raw"):
        forget(pipe, pipe[0].transform(X[S]) - 1, y[S])
    pipe = _pipe(StandardScaler()).fit(X, y)
    snapshot = copy.deepcopy(pipe)
    with pytest.raises(NotTrainingRowsError, match="raw"):
        forget(pipe, 100 * X[S], y[S])
    assert_allclose(pipe[0].mean_, snapshot[0].mean_)
    assert pipe[-1].n_forgotten_ == 0


def test_unsupported_steps_refused_by_name(cancer):
    X, y, S = cancer
    pipe = make_pipeline(StandardScaler(), PCA(3), ErasableLogisticRegression()).fit(
        X, y
    )
    snapshot = copy.deepcopy(pipe)
    with pytest.raises(UnsupportedStepError, match="'pca'.*PCA"):
        forget(pipe, X[S], y[S])
    assert_allclose(pipe[0].mean_, snapshot[0].mean_)
    imputed = make_pipeline(SimpleImputer(), ErasableLogisticRegression()).fit(X, y)
    with pytest.raises(UnsupportedStepError, match="SimpleImputer.*how many"):
        forget(imputed, X[S], y[S])
    with pytest.warns(PreprocessingNotErasedWarning, match="standardscaler"):
        forget(pipe, X[S], y[S], update_preprocessing=False)
    assert pipe[-1].n_forgotten_ == S.sum()
    assert_allclose(pipe[0].mean_, snapshot[0].mean_)


def test_stateless_steps_pass_through(cancer):
    X, y, S = cancer
    pipe = make_pipeline(
        FunctionTransformer(np.log1p),
        "passthrough",
        StandardScaler(),
        ErasableLogisticRegression(),
    ).fit(X, y)
    forget(pipe, X[S], y[S])
    refit = clone(pipe).fit(X[~S], y[~S])
    assert_allclose(pipe[2].mean_, refit[2].mean_, rtol=1e-10)
    bad = make_pipeline(
        StandardScaler(), FunctionTransformer(np.tanh), ErasableLogisticRegression()
    ).fit(X, y)
    with pytest.raises(UnsupportedStepError, match="functiontransformer"):
        forget(bad, X[S], y[S])


def test_search_forgets_and_warns(cancer):
    X, y, S = cancer
    pipe = make_pipeline(StandardScaler(), ErasableLogisticRegression())
    search = GridSearchCV(
        pipe, {"erasablelogisticregression__C": [0.1, 1.0]}, cv=2
    ).fit(X, y)
    with pytest.warns(StaleSearchWarning, match="cv_results_"):
        forget(search, X[S], y[S])
    assert search.best_estimator_[-1].n_forgotten_ == S.sum()
    assert search.n_forgotten_ == S.sum()
    no_refit = GridSearchCV(
        ErasableLogisticRegression(), {"C": [1.0]}, cv=2, refit=False
    ).fit(X, y)
    with pytest.raises(ValueError, match="best_estimator_"):
        forget(no_refit, X[S], y[S])


def test_bare_estimator_and_bad_final_step(cancer):
    X, y, S = cancer
    clf = ErasableLogisticRegression().fit(StandardScaler().fit_transform(X), y)
    X = StandardScaler().fit_transform(X)
    forget(clf, X[S], y[S], sample_weight=np.ones(S.sum()))
    assert clf.n_forgotten_ == S.sum()
    with pytest.raises(UnsupportedStepError, match="partial_forget"):
        forget(make_pipeline(StandardScaler(), PCA(2)).fit(X), X[S], y[S])
    with pytest.raises(TypeError, match="<step>__<parameter>"):
        forget(_pipe(StandardScaler()).fit(X, y), X[S], y[S], nostep__x=1)


def test_metadata_routing(cancer):
    import pickle

    from sklearn import config_context

    X, y, S = cancer
    w = np.random.default_rng(2).uniform(0.5, 2, len(y))
    with pytest.raises(RuntimeError, match="metadata routing"):
        ErasableLogisticRegression().set_partial_forget_request(sample_weight=True)
    with config_context(enable_metadata_routing=True):
        clf = ErasableLogisticRegression().set_fit_request(sample_weight=True)
        clf.set_partial_forget_request(sample_weight=True)
        expected = {"sample_weight": True, "ledger": None, "request_id": None}
        assert clone(clf)._get_partial_forget_request() == expected
        assert pickle.loads(pickle.dumps(clf))._get_partial_forget_request() == expected
        with pytest.raises(TypeError, match="Unexpected"):
            clf.set_partial_forget_request(weights=True)
        scaler = StandardScaler().set_fit_request(sample_weight=True)
        pipe = make_pipeline(scaler, clf).fit(X, y, sample_weight=w)
        by_name = copy.deepcopy(pipe)
        forget(pipe, X[S], y[S], sample_weight=w[S])
        refit = clone(pipe).fit(X[~S], y[~S], sample_weight=w[~S])
        assert_allclose(pipe[0].mean_, refit[0].mean_, rtol=1e-10)
        assert pipe[-1].n_forgotten_ == S.sum()
        # Not requested: refused, as scikit-learn's routers do.
        plain = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=False),
            ErasableLogisticRegression(),
        ).fit(X, y)
        with pytest.raises(ValueError, match="set_partial_forget_request"):
            forget(plain, X[S], y[S], sample_weight=w[S])
        assert plain[-1].n_forgotten_ == 0
    # Without routing, the same weights given by step name: the same result.
    forget(by_name, X[S], y[S], sample_weight=w[S], standardscaler__sample_weight=w[S])
    assert_allclose(by_name[-1].coef_, pipe[-1].coef_)
    multi = ErasableMultiOutputClassifier(ErasableLogisticRegression())
    assert hasattr(multi, "set_partial_forget_request")


def test_raw_rows_given_to_the_final_step_are_refused(cancer):
    """The README's old recipe with raw rows: caught by the row-norm bound."""
    from sklearn_ssse.exceptions import InvalidRequestError

    X, y, S = cancer
    pipe = _pipe(StandardScaler()).fit(X, y)
    with pytest.raises(InvalidRequestError):
        pipe[-1].partial_forget(X[S], y[S])
    assert pipe[-1].n_forgotten_ == 0


def test_mlp_pipeline(cancer):
    X, y, S = cancer
    pipe = make_pipeline(
        StandardScaler(),
        ErasableMLPClassifier(
            hidden_layer_sizes=(4,), solver="lbfgs", max_iter=200, random_state=0
        ),
    ).fit(X, y)
    before = pipe.predict_proba(X)
    forget(pipe, X[S], y[S])
    refit = clone(pipe).fit(X[~S], y[~S])
    assert_allclose(pipe[0].mean_, refit[0].mean_, rtol=1e-10)
    assert pipe[-1].n_forgotten_ == S.sum()
    assert np.abs(pipe.predict_proba(X) - before).max() > 0


def test_erasable_simple_imputer(cancer):
    from sklearn_ssse.compose import ErasableSimpleImputer, ImputedRowsChangedWarning

    X, y, S = cancer
    X = X.copy()
    X[~S & (np.arange(len(y)) % 7 == 0), 0] = np.nan  # missing in remaining rows
    X[np.flatnonzero(S)[0], 1] = np.nan  # and in a forgotten one
    pipe = make_pipeline(
        ErasableSimpleImputer(), StandardScaler(), ErasableLogisticRegression()
    ).fit(X, y)
    refit = clone(pipe).fit(X[~S], y[~S])
    with pytest.warns(ImputedRowsChangedWarning, match=r"feature\(s\) \[0"):
        forget(pipe, X[S], y[S])
    assert_allclose(pipe[0].statistics_, refit[0].statistics_, rtol=1e-12)
    assert_array_equal(pipe[0].n_observed_, refit[0].n_observed_)
    assert pipe[0].n_samples_seen_ == refit[0].n_samples_seen_
    assert pipe[-1].n_forgotten_ == S.sum()
    median = make_pipeline(
        ErasableSimpleImputer(strategy="median"), ErasableLogisticRegression()
    ).fit(X, y)
    with pytest.raises(UnsupportedStepError, match="median"):
        forget(median, X[S], y[S])
