"""ErasableMultiOutputClassifier: the paper's multi-attribute setting."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_multilabel_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import validate_data
from threadpoolctl import threadpool_limits

from sklearn_ssse import ErasableLogisticRegression, ErasureNumericalError
from sklearn_ssse.datasets import load_diabetes_attributes
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier


@pytest.fixture(autouse=True)
def _single_threaded_blas():
    # Every problem here is tiny: BLAS threads only add overhead (a lot of it on a
    # busy machine, where spinning threads wait for a core).
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# -- data ----------------------------------------------------------------------------
def _multilabel(n_samples=200, n_features=8, n_outputs=4, seed=0):
    X, Y = make_multilabel_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_classes=n_outputs,
        random_state=seed,
    )
    return StandardScaler().fit_transform(X), Y


def _diabetes_attributes():
    """The realistic multi-attribute problem, standardised."""
    X, Y = load_diabetes_attributes()
    return StandardScaler().fit_transform(X), Y


def _params(model):
    """Each output's ``[coef_ | intercept_]``, one row per output."""
    return np.vstack(
        [np.r_[est.coef_.ravel(), est.intercept_] for est in model.estimators_]
    )


def _state(model):
    return pickle.dumps(model)


# -- scikit-learn's common checks ------------------------------------------------------
_Y_NOT_2D = (
    "fits on a 1-D y: like MultiOutputClassifier, fit requires a 2-D Y and refuses "
    "1-D targets (with a message about dimensions)"
)
_PROBA_LIST = (
    "treats predict_proba's output as one array; a multi-output classifier returns "
    "a list of arrays, one per output"
)
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "passes the targets by the keyword `y`; fit keeps MultiOutputClassifier's "
        "name `Y` (the check passes with the targets given positionally)"
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "passes the targets by the keyword `y`; fit keeps MultiOutputClassifier's "
        "name `Y` (the check passes with the targets given positionally)"
    ),
    "check_estimator_sparse_array": _PROBA_LIST
    + " (sparse input works: test_sparse_input_matches_dense)",
    "check_estimator_sparse_matrix": _PROBA_LIST
    + " (sparse input works: test_sparse_input_matches_dense)",
    "check_methods_sample_order_invariance": _PROBA_LIST,
    "check_classifiers_one_label": _Y_NOT_2D,
    "check_classifiers_one_label_sample_weights": _Y_NOT_2D,
    "check_classifiers_classes": _Y_NOT_2D,
    "check_classifiers_train": (
        "expects predictions of shape (n_samples,); they are (n_samples, n_outputs)"
    ),
}


@parametrize_with_checks(
    [ErasableMultiOutputClassifier(ErasableLogisticRegression())],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# -- API -------------------------------------------------------------------------------
def test_partial_forget_exists_only_when_sub_estimator_has_it():
    X, Y = _multilabel(n_samples=60)
    plain = ErasableMultiOutputClassifier(LogisticRegression())
    assert not hasattr(plain, "partial_forget")
    assert not hasattr(plain.fit(X, Y), "partial_forget")
    erasable = ErasableMultiOutputClassifier(ErasableLogisticRegression())
    assert hasattr(erasable, "partial_forget")
    assert hasattr(erasable.fit(X, Y), "partial_forget")


def test_multioutput_conventions():
    X, Y = _multilabel(n_samples=80, n_outputs=3)
    clf = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    assert clf.partial_forget(X[:5], Y[:5]) is clf
    assert clf.n_forgotten_ == 5
    assert clf.predict(X).shape == Y.shape
    proba = clf.predict_proba(X)
    assert isinstance(proba, list) and len(proba) == 3
    assert all(p.shape == (80, 2) for p in proba)
    assert [c.tolist() for c in clf.classes_] == [[0, 1]] * 3
    assert clf.n_features_in_ == X.shape[1]


# -- agreement with independent models -------------------------------------------------
@pytest.mark.parametrize("curvature", ["fisher", "hessian"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_loop_of_independent_models(curvature, fit_intercept):
    X, Y = _multilabel()
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=len(X))
    base = ErasableLogisticRegression(
        curvature=curvature, fit_intercept=fit_intercept, forget_scale=0.8
    )
    clf = ErasableMultiOutputClassifier(base).fit(X, Y, sample_weight=sample_weight)
    loop = [
        clone(base).fit(X, Y[:, j], sample_weight=sample_weight)
        for j in range(Y.shape[1])
    ]
    for rows in (np.arange(0, 7), np.arange(50, 90)):  # Woodbury, then dense re-solve
        clf.partial_forget(X[rows], Y[rows], sample_weight=sample_weight[rows])
        for j, est in enumerate(loop):
            est.partial_forget(X[rows], Y[rows, j], sample_weight=sample_weight[rows])
    for est, single in zip(clf.estimators_, loop):
        assert_allclose(est.coef_, single.coef_, rtol=1e-12, atol=1e-14)
        assert_allclose(est.intercept_, single.intercept_, rtol=1e-12, atol=1e-14)
        assert_allclose(
            est.curvature_inverse_.to_dense(),
            single.curvature_inverse_.to_dense(),
            rtol=1e-12,
            atol=1e-14,
        )
        assert_array_equal(est.class_counts_, single.class_counts_)
    expected = np.column_stack([est.predict(X) for est in loop])
    assert_array_equal(clf.predict(X), expected)
    assert clf.n_forgotten_ == 47


def test_n_jobs_gives_the_same_model():
    X, Y = _multilabel(n_samples=120)
    base = ErasableLogisticRegression(curvature="hessian")
    serial = ErasableMultiOutputClassifier(base).fit(X, Y)
    # Threads keep the test fast (fit's default backend is processes, whose only
    # extra requirement, pickling the fitted outputs, is test_pickle_round_trip's).
    with parallel_config(backend="threading"):
        parallel = ErasableMultiOutputClassifier(base, n_jobs=2).fit(X, Y)
    for clf in (serial, parallel):
        clf.partial_forget(X[:9], Y[:9])  # threads in any case
    assert_allclose(_params(parallel), _params(serial), rtol=1e-12, atol=1e-14)
    assert_array_equal(parallel.predict(X), serial.predict(X))


def test_sparse_input_matches_dense():
    X, Y = _multilabel(n_samples=120)
    X[np.abs(X) < 0.5] = 0.0
    base = ErasableLogisticRegression(curvature="hessian", tol=1e-10)
    dense = ErasableMultiOutputClassifier(base).fit(X, Y)
    sparse = ErasableMultiOutputClassifier(base).fit(sp.csr_matrix(X), Y)
    dense.partial_forget(X[:10], Y[:10])
    sparse.partial_forget(sp.csr_matrix(X[:10]), Y[:10])
    assert_allclose(_params(sparse), _params(dense), rtol=1e-5, atol=1e-7)


# -- fidelity to a refit ---------------------------------------------------------------
def _refit(base, X, Y):
    """Refit of every output; ``None`` for an output left with one class."""
    return [
        clone(base).fit(X, Y[:, j]) if len(np.unique(Y[:, j])) > 1 else None
        for j in range(Y.shape[1])
    ]


def _aucs(probas, Y):
    """ROC-AUC of each output on the rows ``Y`` (0 where they hold one class)."""
    return np.array(
        [
            roc_auc_score(Y[:, j], p[:, 1]) if len(np.unique(Y[:, j])) > 1 else 0.0
            for j, p in enumerate(probas)
        ]
    )


def _refit_probas(refits, Y_remaining, X):
    """``predict_proba`` of the refit; one-hot on the class left where it is alone."""
    probas = []
    for j, est in enumerate(refits):
        if est is None:
            proba = np.zeros((len(X), 2))
            proba[:, int(Y_remaining[0, j])] = 1.0
        else:
            proba = est.predict_proba(X)
        probas.append(proba)
    return probas


def _fidelity(base, X, Y, S):
    """Erase ``S``; return (parameter-distance ratios, similarity ratio γ, model).

    The ratio of output ``j`` is ``‖θ̂ − θ_{-S}‖ / ‖θ* − θ_{-S}‖`` (0: the refit
    exactly, 1: no better than not erasing); γ is the paper's similarity ratio
    over the outputs' ROC-AUC on ``S`` (1: behaves like the refit).
    """
    keep = np.setdiff1d(np.arange(len(X)), S)
    clf = ErasableMultiOutputClassifier(base).fit(X, Y)
    before, auc_before = _params(clf), _aucs(clf.predict_proba(X[S]), Y[S])
    clf.partial_forget(X[S], Y[S])
    after, auc_after = _params(clf), _aucs(clf.predict_proba(X[S]), Y[S])
    refits = _refit(base, X[keep], Y[keep])
    auc_refit = _aucs(_refit_probas(refits, Y[keep], X[S]), Y[S])
    ratios = []
    for j, est in enumerate(refits):
        if est is not None:
            target = np.r_[est.coef_.ravel(), est.intercept_]
            ratios.append(
                np.linalg.norm(after[j] - target) / np.linalg.norm(before[j] - target)
            )
    to_original = np.abs(auc_after - auc_before).sum()
    to_refit = np.abs(auc_after - auc_refit).sum()
    gamma = to_original / (to_original + to_refit) if to_original + to_refit else 1.0
    return np.array(ratios), gamma, clf


def test_fidelity_make_multilabel():
    # The paper's shape in miniature: binary attributes, no intercept.
    X, Y = _multilabel(n_samples=300, n_features=10, n_outputs=5)
    S = np.random.default_rng(0).choice(len(X), 20, replace=False)
    hessian = ErasableLogisticRegression(fit_intercept=False, curvature="hessian")
    ratios, gamma, _ = _fidelity(hessian, X, Y, S)
    assert np.all(ratios < 0.1)
    assert gamma > 0.9
    # The Fisher, at its untuned scale 1, is closer to the refit than not erasing.
    fisher = ErasableLogisticRegression(fit_intercept=False, curvature="fisher")
    ratios, gamma, _ = _fidelity(fisher, X, Y, S)
    assert np.all(ratios < 0.5)
    assert gamma > 0.6


def test_fidelity_diabetes_rare_attribute_partly_erased():
    X, Y = _diabetes_attributes()
    positives = np.flatnonzero(Y[:, 2] == 1)  # severe progression: 10% of rows
    S = np.random.default_rng(0).choice(positives, len(positives) // 2, replace=False)
    ratios, gamma, _ = _fidelity(
        ErasableLogisticRegression(curvature="hessian"), X, Y, S
    )
    assert np.all(ratios < 0.4)
    assert gamma > 0.8


def test_fidelity_diabetes_rare_attribute_wholly_erased():
    X, Y = _diabetes_attributes()
    S = np.flatnonzero(Y[:, 2] == 1)
    ratios, gamma, clf = _fidelity(
        ErasableLogisticRegression(curvature="hessian"), X, Y, S
    )
    assert len(ratios) == 4  # the rare output has no refit: it has one class left
    assert np.all(ratios < 0.2)
    assert gamma > 0.8
    # Like the refit's only option, the rare output predicts "not severe" for all.
    assert_array_equal(clf.predict(X)[:, 2], 0)


# -- an output left with one class ----------------------------------------------------
def test_output_left_with_one_class_predicts_it_through_later_requests():
    X, Y = _multilabel(n_samples=150)
    base = ErasableLogisticRegression(curvature="hessian")
    clf = ErasableMultiOutputClassifier(base).fit(X, Y)
    loop = [clone(base).fit(X, Y[:, j]) for j in range(Y.shape[1])]
    j = 2
    rows = np.flatnonzero(Y[:, j] == 1)
    requests = [rows, np.flatnonzero(Y[:, j] == 0)[:10]]  # then a later request
    for request in requests:
        clf.partial_forget(X[request], Y[request])
        for k, est in enumerate(loop):
            est.partial_forget(X[request], Y[request, k])
        assert_array_equal(clf.predict(X)[:, j], 0)
        assert_array_equal(clf.predict_proba(X)[j], np.tile([1.0, 0.0], (len(X), 1)))
        assert np.all(clf.estimators_[j].decision_function(X) == -np.inf)
        assert_array_equal(clf.classes_[j], [0, 1])
        # The other outputs are those of independent models.
        others = [k for k in range(Y.shape[1]) if k != j]
        expected = [np.r_[loop[k].coef_.ravel(), loop[k].intercept_] for k in others]
        assert_allclose(_params(clf)[others], np.vstack(expected), rtol=1e-12)
    # A positive of output j no longer exists: asking to forget one is refused.
    state = _state(clf)
    with pytest.raises(ValueError, match="output 2: cannot forget more rows"):
        clf.partial_forget(X[rows[:1]], Y[rows[:1]])
    assert _state(clf) == state


# -- atomicity and bad input -----------------------------------------------------------
def _fitted(**kwargs):
    X, Y = _multilabel(n_samples=80)
    base = ErasableLogisticRegression(**kwargs)
    return ErasableMultiOutputClassifier(base).fit(X, Y), X, Y


def test_request_refused_by_one_output_changes_no_output():
    clf, X, Y = _fitted()
    state = _state(clf)
    Y_bad = Y[:6].copy()
    Y_bad[0, -1] = 7  # a label the last output never saw
    with pytest.raises(ValueError, match="output 3: y contains labels not seen"):
        clf.partial_forget(X[:6], Y_bad)
    assert _state(clf) == state


def test_numerical_failure_in_one_output_changes_no_output(monkeypatch):
    clf, X, Y = _fitted()
    state = _state(clf)
    last = clf.estimators_[-1]
    original = ErasableLogisticRegression._compute_forget

    def failing(self, *args):
        if self.coef_ is last.coef_:  # the request's working copy of the last output
            raise ErasureNumericalError("the stored curvature would be indefinite")
        return original(self, *args)

    monkeypatch.setattr(ErasableLogisticRegression, "_compute_forget", failing)
    with pytest.raises(ErasureNumericalError, match="output 3: the stored curvature"):
        clf.partial_forget(X[:6], Y[:6])
    assert _state(clf) == state


def _bad_requests(X, Y):
    X_nan, X_inf = X[:3].copy(), X[:3].copy()
    X_nan[0, 0], X_inf[1, 1] = np.nan, np.inf
    ones = np.flatnonzero(Y[:, 0] == 1)
    return {
        "wrong number of features": (X[:3, :-1], Y[:3]),
        "NaN": (X_nan, Y[:3]),
        "infinity": (X_inf, Y[:3]),
        "1-D Y": (X[:3], Y[:3, 0]),
        "wrong number of outputs": (X[:3], Y[:3, :-1]),
        "mismatched lengths": (X[:3], Y[:2]),
        "more rows than remain": (
            np.repeat(X[ones], 2, axis=0),
            np.repeat(Y[ones], 2, axis=0),
        ),
        "every remaining row": (X, Y),
        "NaN in Y": (X[:3], np.where(np.eye(3, Y.shape[1]), np.nan, Y[:3])),
    }


@pytest.mark.parametrize("case", list(_bad_requests(*_multilabel(n_samples=80))))
def test_bad_input_raises_and_leaves_model_unchanged(case):
    clf, X, Y = _fitted()
    X_bad, Y_bad = _bad_requests(X, Y)[case]
    state = _state(clf)
    with pytest.raises(ValueError):
        clf.partial_forget(X_bad, Y_bad)
    assert _state(clf) == state


def test_sparse_Y_is_refused():
    clf, X, Y = _fitted()
    state = _state(clf)
    with pytest.raises(TypeError, match="Sparse data was passed for Y"):
        clf.partial_forget(X[:3], sp.csr_matrix(Y[:3]))
    assert _state(clf) == state


def test_unfitted_raises():
    X, Y = _multilabel(n_samples=40)
    clf = ErasableMultiOutputClassifier(ErasableLogisticRegression())
    with pytest.raises(NotFittedError):
        clf.partial_forget(X[:2], Y[:2])


def test_empty_request_is_a_no_op():
    clf, X, Y = _fitted()
    state = _state(clf)
    assert clf.partial_forget(X[:0], Y[:0]) is clf
    assert _state(clf) == state


# -- parameters of the request ---------------------------------------------------------
def test_forget_scale_and_leave_out_are_read_from_estimator():
    X, Y = _multilabel(n_samples=100)
    clf = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    clf.set_params(estimator__forget_scale=0.3, estimator__leave_out=False)
    clf.partial_forget(X[:8], Y[:8])
    direct = ErasableLogisticRegression(forget_scale=0.3, leave_out=False)
    reference = ErasableMultiOutputClassifier(direct).fit(X, Y)
    reference.partial_forget(X[:8], Y[:8])
    assert_allclose(_params(clf), _params(reference), rtol=1e-12, atol=1e-14)
    assert all(est.forget_scale == 0.3 for est in clf.estimators_)
    assert not any(est.leave_out for est in clf.estimators_)


def test_curvature_parameters_changed_after_fit_are_refused():
    clf, X, Y = _fitted()
    state = _state(clf)
    clf.set_params(estimator__curvature="fisher")
    with pytest.raises(ValueError, match="call fit again"):
        clf.partial_forget(X[:3], Y[:3])
    # Both sides through one round trip, so that pickle's memo sees alike objects.
    assert pickle.dumps(pickle.loads(pickle.dumps(clf.estimators_))) == pickle.dumps(
        pickle.loads(state).estimators_
    )


def test_invalid_forget_scale_is_refused():
    clf, X, Y = _fitted()
    before = _params(clf)
    clf.set_params(estimator__forget_scale=-1.0)
    with pytest.raises(ValueError, match="forget_scale"):
        clf.partial_forget(X[:3], Y[:3])
    assert_array_equal(_params(clf), before)


# -- pickling, dtype, memory -----------------------------------------------------------
def test_pickle_round_trip():
    clf, X, Y = _fitted(curvature="hessian")
    restored = pickle.loads(pickle.dumps(clf))
    for model in (clf, restored):
        model.partial_forget(X[:5], Y[:5])
    assert_array_equal(_params(restored), _params(clf))
    # Pickled after a request, it carries on where it stopped.
    again = pickle.loads(pickle.dumps(clf))
    for model in (clf, again):
        model.partial_forget(X[5:9], Y[5:9])
    assert_array_equal(_params(again), _params(clf))
    assert again.n_forgotten_ == 9
    for a, b in zip(again.predict_proba(X), clf.predict_proba(X)):
        assert_array_equal(a, b)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_curvature_dtype_and_memory_formula(fit_intercept, dtype):
    X, Y = _multilabel(n_samples=100, n_features=6, n_outputs=3)
    base = ErasableLogisticRegression(fit_intercept=fit_intercept)
    clf = ErasableMultiOutputClassifier(base).fit(X.astype(dtype), Y)
    L, m = Y.shape[1], X.shape[1]
    d = m + 1 if fit_intercept else m
    blocks = [est.curvature_inverse_ for est in clf.estimators_]
    assert all(inverse.dtype == dtype for inverse in blocks)
    assert (
        sum(inverse.nbytes for inverse in blocks) == L * d**2 * np.dtype(dtype).itemsize
    )
    clf.partial_forget(X[:5], Y[:5])  # float64 rows: the model keeps its dtype
    assert all(est.coef_.dtype == dtype for est in clf.estimators_)
    assert all(est.curvature_inverse_.dtype == dtype for est in clf.estimators_)


def test_float32_storage_is_close_to_float64():
    X, Y = _multilabel(n_samples=150)
    base = ErasableLogisticRegression(curvature="hessian", tol=1e-8)
    wide = ErasableMultiOutputClassifier(base).fit(X, Y)
    narrow = ErasableMultiOutputClassifier(base).fit(X.astype(np.float32), Y)
    for clf in (wide, narrow):
        clf.partial_forget(X[:12], Y[:12])
    assert_allclose(_params(narrow), _params(wide), rtol=1e-3, atol=1e-3)


# -- any sub-estimator with partial_forget ---------------------------------------------
class _CentroidForgetter(ClassifierMixin, BaseEstimator):
    """Nearest-centroid classifier that forgets rows exactly (not an SSSE model)."""

    def __init__(self, forget_scale=1.0):
        self.forget_scale = forget_scale

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        self.classes_, y = np.unique(y, return_inverse=True)
        onehot = np.eye(len(self.classes_))[y]
        self.sums_, self.counts_ = onehot.T @ X, onehot.sum(axis=0)
        return self

    def predict(self, X):
        X = validate_data(self, X, reset=False)
        centroids = self.sums_ / self.counts_[:, None]
        distances = ((X[:, None, :] - centroids[None]) ** 2).sum(axis=2)
        return self.classes_[np.argmin(distances, axis=1)]

    def partial_forget(self, X, y):
        X, y = validate_data(self, X, y, reset=False)
        onehot = (np.asarray(y)[:, None] == self.classes_).astype(float)
        counts = self.counts_ - onehot.sum(axis=0)
        if np.any(counts < 1):
            raise ValueError("cannot forget every row of a class")
        self.sums_, self.counts_ = self.sums_ - onehot.T @ X, counts
        return self


def test_any_sub_estimator_with_partial_forget():
    X, Y = _multilabel(n_samples=100)
    clf = ErasableMultiOutputClassifier(_CentroidForgetter()).fit(X, Y)
    clf.set_params(estimator__forget_scale=0.5)
    clf.partial_forget(X[:10], Y[:10], sample_weight=None)
    refit = ErasableMultiOutputClassifier(_CentroidForgetter()).fit(X[10:], Y[10:])
    for est, ref in zip(clf.estimators_, refit.estimators_):
        assert_allclose(est.sums_, ref.sums_, atol=1e-12)
        assert_array_equal(est.counts_, ref.counts_)
        assert est.forget_scale == 0.5
    assert_array_equal(clf.predict(X), refit.predict(X))
    # Atomic as well: the last output refuses, no output changes.
    state = _state(clf)
    last = np.flatnonzero(Y[10:, -1] == 1) + 10
    with pytest.raises(ValueError, match="output 3: cannot forget every row"):
        clf.partial_forget(X[last], Y[last])
    assert _state(clf) == state
