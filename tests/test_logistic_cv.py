"""ErasableLogisticRegressionCV: LogisticRegressionCV whose final model forgets."""

import copy
import pickle
import warnings

import numpy as np
import pytest
from _data import flat_params as _params
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ssse import ErasableLogisticRegression, ErasableLogisticRegressionCV
from sklearn_ssse.estimator_checks import parametrize_with_forget_checks

QUIET = dict(scoring="neg_log_loss", use_legacy_attributes=False)


def _assert_same_fit(ours, theirs):
    for name, value in vars(theirs).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        mine = getattr(ours, name)
        if isinstance(value, dict):
            assert value.keys() == mine.keys()
            for key in value:
                assert_array_equal(mine[key], value[key])
        else:
            assert_array_equal(mine, value, err_msg=name)


@pytest.mark.parametrize(
    "params",
    [
        dict(Cs=3, l1_ratios=(0,), **QUIET),
        dict(Cs=3, l1_ratios=(0,), scoring="accuracy", use_legacy_attributes=True),
        dict(Cs=3, l1_ratios=(0,), class_weight="balanced", **QUIET),
        dict(Cs=3, l1_ratios=(0.0, 0.5, 1.0), solver="saga", random_state=0, **QUIET),
        dict(Cs=3, l1_ratios=(1,), solver="liblinear", random_state=0, **QUIET),
        dict(Cs=3, l1_ratios=(0,), refit=False, **QUIET),
    ],
)
@pytest.mark.parametrize("data", ["binary_data", "multiclass_data"])
def test_fit_is_logistic_regression_cv_bit_for_bit(params, data, request):
    X, y = request.getfixturevalue(data)
    if params.get("solver") == "liblinear" and len(np.unique(y)) > 2:
        pytest.skip("liblinear is binary only")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = ErasableLogisticRegressionCV(**params).fit(X, y)
        theirs = LogisticRegressionCV(**params).fit(X, y)
    _assert_same_fit(ours, theirs)
    assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))


@pytest.mark.parametrize(
    "params",
    [
        dict(Cs=4, l1_ratios=(0,)),
        dict(Cs=4, l1_ratios=(0,), class_weight="balanced"),
        dict(Cs=3, l1_ratios=(1,), solver="liblinear"),
    ],
)
def test_forgetting_approaches_a_refit_with_the_selected_C(binary_data, params):
    X, y = binary_data
    cv = ErasableLogisticRegressionCV(
        curvature="hessian", tol=1e-10, max_iter=5000, **params, **QUIET
    ).fit(X, y)
    rows = np.arange(3)
    original = _params(cv)
    selected = dict(C_=cv.C_, l1_ratio_=cv.l1_ratio_, scores_=cv.scores_.copy())
    cv.partial_forget(X[rows], y[rows])
    refit = LogisticRegression(
        C=cv.C_,
        l1_ratio=cv.l1_ratio_,
        solver=cv.solver,
        class_weight=cv.class_weight,
        tol=1e-10,
        max_iter=5000,
    ).fit(X[3:], y[3:])
    distance = np.linalg.norm(_params(cv) - _params(refit))
    assert distance / np.linalg.norm(original - _params(refit)) < 0.05
    # The selection is not redone, and says so.
    assert cv.selection_stale_ and cv.n_forgotten_ == 3
    assert cv.C_ == selected["C_"] and cv.l1_ratio_ == selected["l1_ratio_"]
    assert_array_equal(cv.scores_, selected["scores_"])
    assert_array_equal(cv.coef_, cv.final_estimator_.coef_)
    # the fold models, trained on the forgotten rows, are gone (issue 22)
    assert cv.coefs_paths_ is None


def test_final_estimator_is_the_selected_objective(binary_data):
    X, y = binary_data
    cv = ErasableLogisticRegressionCV(
        Cs=3, l1_ratios=(0.2, 0.8), solver="saga", random_state=0, **QUIET
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cv.fit(X, y)
    final = cv.final_estimator_
    assert isinstance(final, ErasableLogisticRegression)
    assert final.C == cv.C_ and final.l1_ratio == cv.l1_ratio_
    assert_array_equal(final.coef_, cv.coef_)
    zero = cv.coef_ == 0
    cv.partial_forget(X[:3], y[:3])
    assert_array_equal(cv.coef_[zero], 0)


def test_refit_false_refuses_to_forget(binary_data):
    X, y = binary_data
    cv = ErasableLogisticRegressionCV(Cs=2, l1_ratios=(0,), refit=False, **QUIET)
    cv.fit(X, y)
    assert cv.final_estimator_ is None
    with pytest.raises(ValueError, match="refit=False"):
        cv.partial_forget(X[:2], y[:2])


def test_changed_search_or_curvature_parameter_is_refused(binary_data):
    X, y = binary_data
    cv = ErasableLogisticRegressionCV(Cs=2, l1_ratios=(0,), **QUIET).fit(X, y)
    before = pickle.dumps(cv.__dict__)
    for name, value in [("Cs", 3), ("solver", "newton-cg"), ("curvature", "fisher")]:
        changed = copy.deepcopy(cv).set_params(**{name: value})
        with pytest.raises(ValueError, match=name):
            changed.partial_forget(X[:2], y[:2])
    assert pickle.dumps(cv.__dict__) == before
    # ε and leave_out may change: they reach the final model.
    a = copy.deepcopy(cv).partial_forget(X[:3], y[:3])
    b = copy.deepcopy(cv).set_params(forget_scale=2.0).partial_forget(X[:3], y[:3])
    np.testing.assert_allclose(
        _params(b) - _params(cv), 2 * (_params(a) - _params(cv)), rtol=1e-10
    )


def test_forgetting_a_whole_class_stops_predicting_it(multiclass_data):
    X, y = multiclass_data
    cv = ErasableLogisticRegressionCV(Cs=2, l1_ratios=(0,), **QUIET).fit(X, y)
    gone = np.flatnonzero(y == 2)
    cv.partial_forget(X[gone], y[gone])
    assert np.all(cv.decision_function(X)[:, 2] == -np.inf)
    assert not np.any(cv.predict(X) == 2)


ESTIMATORS = [
    ErasableLogisticRegressionCV(Cs=2, cv=3, l1_ratios=(0,), **QUIET),
    ErasableLogisticRegressionCV(
        Cs=2, cv=3, l1_ratios=(0.5,), solver="saga", curvature="hessian", **QUIET
    ),
]


def _expected_failed_checks(estimator):
    if estimator.solver != "saga":
        return {}
    reason = (
        "saga stops at tol=1e-4, so weighted and repeated fits differ by more than "
        "the check's 1e-7; LogisticRegressionCV with these parameters fails it too"
    )
    return {
        "check_sample_weight_equivalence_on_dense_data": reason,
        "check_sample_weight_equivalence_on_sparse_data": reason,
    }


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@parametrize_with_forget_checks(ESTIMATORS)
def test_partial_forget_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(type(estimator).__name__, estimator)


def test_ledger_reaches_the_final_model(binary_data):
    from sklearn_ssse.exceptions import InvalidRequestError
    from sklearn_ssse.ledger import ErasureLedger

    X, y = binary_data
    cv = ErasableLogisticRegressionCV(Cs=2, l1_ratios=(0,), **QUIET).fit(X, y)
    ledger = ErasureLedger().record_training(X, y)
    cv.partial_forget(X[:2], y[:2], ledger=ledger)
    assert ledger.n_forgotten == 2
    before = _params(cv)
    with pytest.raises(InvalidRequestError):
        cv.partial_forget(X[1:3], y[1:3], ledger=ledger)  # row 1 already forgotten
    assert_array_equal(_params(cv), before)


def test_serving_model_is_the_final_plain_logistic_regression(binary_data):
    from sklearn_ssse.serving import serving_model

    X, y = binary_data
    cv = ErasableLogisticRegressionCV(Cs=2, l1_ratios=(0,), **QUIET).fit(X, y)
    cv.partial_forget(X[:3], y[:3])
    plain = serving_model(cv)
    assert type(plain) is LogisticRegression and plain.C == cv.C_
    assert_array_equal(plain.predict_proba(X), cv.predict_proba(X))


def test_forget_through_a_pipeline_with_routing(binary_data):
    from sklearn import config_context
    from sklearn.pipeline import make_pipeline

    from sklearn_ssse.compose import forget

    X, y = binary_data
    with config_context(enable_metadata_routing=True):
        cv = ErasableLogisticRegressionCV(Cs=2, l1_ratios=(0,), **QUIET)
        cv.set_partial_forget_request(sample_weight=True)
        scaler = StandardScaler().set_fit_request(sample_weight=False)
        pipe = make_pipeline(scaler, cv).fit(X, y)
        forget(pipe, X[:3], y[:3], sample_weight=np.ones(3), update_preprocessing=False)
    assert pipe[-1].n_forgotten_ == 3 and pipe[-1].selection_stale_
