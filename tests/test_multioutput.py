"""ErasableMultiOutputClassifier: the paper's multi-attribute setting."""

import copy
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

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasureNumericalError,
    RefitRecommendedError,
    RefitRecommendedWarning,
    _multioutput_batch,
    _stacked,
)
from sklearn_ssse._curvature import BlockDiagonalInverse
from sklearn_ssse._stacked import InverseStack, StackedBlockInverse
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


@pytest.mark.parametrize("batched_fails", [False, True])
def test_numerical_failure_in_one_output_changes_no_output(monkeypatch, batched_fails):
    clf, X, Y = _fitted()
    state = _state(clf)
    last = clf.estimators_[-1]
    original = ErasableLogisticRegression._compute_forget

    def failing(self, *args):
        if self.coef_ is last.coef_:  # the request's working copy of the last output
            raise ErasureNumericalError("the stored curvature would be indefinite")
        return original(self, *args)

    monkeypatch.setattr(ErasableLogisticRegression, "_compute_forget", failing)
    if batched_fails:
        # A failure in the batched path hands the request to the per-output
        # path, which names the output that fails.
        def indefinite(*args, **kwargs):
            raise np.linalg.LinAlgError("not positive definite")

        monkeypatch.setattr(InverseStack, "downdated_and_applied", indefinite)
    else:
        monkeypatch.setattr(
            "sklearn_ssse.multioutput.batched_forget", lambda *a, **k: None
        )
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
    key = b"m" * 32  # the fit point is pickled sealed: the key opens it
    clf.set_erasure_key(key)
    restored = pickle.loads(pickle.dumps(clf)).set_erasure_key(key)
    for model in (clf, restored):
        model.partial_forget(X[:5], Y[:5])
    assert_array_equal(_params(restored), _params(clf))
    # Pickled after a request, it carries on where it stopped.
    again = pickle.loads(pickle.dumps(clf)).set_erasure_key(key)
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
    dtype = LogisticRegression().fit(X.astype(dtype), Y[:, 0]).coef_.dtype  # 1.8: f8
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


# -- the batched path (binary logistic outputs, stacked inverses) ----------------------
def _batched_data(dtype=np.float64, n_outputs=4):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 6)).astype(dtype)
    Y = X @ rng.normal(size=(6, n_outputs)) + rng.normal(size=(150, n_outputs)) > 0
    return X, Y.astype(int)


def _per_output(monkeypatch):
    """Make the wrapper take its per-output path (the reference)."""
    monkeypatch.setattr("sklearn_ssse.multioutput.batched_forget", lambda *a, **k: None)


def _assert_same_models(a, b, rtol):
    for ea, eb in zip(a.estimators_, b.estimators_):
        assert ea.coef_.dtype == eb.coef_.dtype
        assert_allclose(ea.coef_, eb.coef_, rtol=rtol, atol=rtol)
        assert_allclose(ea.intercept_, eb.intercept_, rtol=rtol, atol=rtol)
        sa, sb = ea.erasure_state_, eb.erasure_state_
        assert_allclose(
            sa.curvature.to_dense(), sb.curvature.to_dense(), rtol=rtol, atol=rtol
        )
        assert_allclose(sa.data_diagonal, sb.data_diagonal, rtol=rtol, atol=rtol)
        assert_array_equal(sa.class_counts, sb.class_counts)
        assert_allclose(sa.class_weight_sums, sb.class_weight_sums)
        assert sa.n_forgotten == sb.n_forgotten
        for ra, rb in zip(sa.records, sb.records, strict=True):
            assert ra.rows_per_class == rb.rows_per_class
            assert (ra.n_rows, ra.n_remaining) == (rb.n_rows, rb.n_remaining)
            assert ra.step_norm == pytest.approx(rb.step_norm, rel=rtol, abs=rtol)
            for key, value in rb.certificate.items():
                if isinstance(value, float):
                    # float32: the bounds include the rounding of the published
                    # parameters, which differs between the two paths.
                    assert ra.certificate[key] == pytest.approx(
                        value, rel=1e-6 if rtol < 1e-6 else 1e-2, abs=1e-12
                    ), key
                else:
                    assert ra.certificate[key] == value, key


def _stack_of(model):
    """The one stack every output's curvature is a slice of (asserts it)."""
    inverses = [est.curvature_inverse_ for est in model.estimators_]
    assert all(type(inv) is StackedBlockInverse for inv in inverses)
    stack = inverses[0].stack
    assert all(inv.stack is stack for inv in inverses)
    assert [inv.index for inv in inverses] == list(range(len(inverses)))
    return stack


# Requests of 1 to 6 rows (P = 6 or 7): every one takes the batched path.
_REQUESTS = [slice(0, 1), slice(1, 4), slice(4, 5), slice(5, 11), slice(11, 12)]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"curvature": "fisher", "forget_scale": 0.5},
        {"leave_out": False},
        {"fit_intercept": False},
        {"C": 0.3, "class_weight": {0: 1.0, 1: 2.0}},
    ],
    ids=["hessian", "fisher", "leave-in", "no-intercept", "class-weight"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batched_path_matches_per_output_path(monkeypatch, params, dtype):
    X, Y = _batched_data(dtype)
    batched = ErasableMultiOutputClassifier(ErasableLogisticRegression(**params))
    batched.fit(X, Y)
    looped = copy.deepcopy(batched)
    weights = np.linspace(0.5, 2.0, X.shape[0]).astype(dtype)
    for rows in _REQUESTS:
        batched.partial_forget(X[rows], Y[rows], sample_weight=weights[rows])
        _stack_of(batched)  # the batched path ran
    _per_output(monkeypatch)
    for rows in _REQUESTS:
        looped.partial_forget(X[rows], Y[rows], sample_weight=weights[rows])
    assert not isinstance(looped.estimators_[0].curvature_inverse_, StackedBlockInverse)
    _assert_same_models(batched, looped, 1e-10 if dtype == np.float64 else 1e-4)
    dtype = LogisticRegression().fit(X, Y[:, 0]).coef_.dtype  # sklearn 1.8: float64
    for est in batched.estimators_:
        assert est.coef_.dtype == dtype and est.intercept_.dtype == dtype
        assert est.erasure_state_.coefficients.dtype == dtype
    assert _stack_of(batched).base.dtype == dtype


def test_lazy_factors_fold_and_old_states_stay_intact(monkeypatch):
    monkeypatch.setattr(_stacked, "FOLD_RANK", 2)
    X, Y = _batched_data()
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    looped = copy.deepcopy(model)
    old = model.estimators_
    old_inverses = [est.curvature_inverse_.to_dense() for est in old]
    base = _stack_of(model).base
    ranks = []
    for i in range(4):
        model.partial_forget(X[i : i + 1], Y[i : i + 1])
        ranks.append(_stack_of(model).rank)
    # Rank 1, 2, then folded into a new base (3 > 2), then 1 again.
    assert ranks == [1, 2, 0, 1]
    assert _stack_of(model).base is not base
    for est, inverse in zip(old, old_inverses):
        assert_array_equal(est.curvature_inverse_.to_dense(), inverse)
        assert est.n_forgotten_ == 0
    _per_output(monkeypatch)
    for i in range(4):
        looped.partial_forget(X[i : i + 1], Y[i : i + 1])
    _assert_same_models(model, looped, 1e-10)


def test_compact_erasure_state_folds_the_stack(monkeypatch):
    monkeypatch.setattr(_stacked, "FOLD_RANK", 5)
    X, Y = _batched_data()
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    model.partial_forget(X[:1], Y[:1])
    assert _stack_of(model).rank == 1
    before = [est.curvature_inverse_.to_dense() for est in model.estimators_]
    coef = [est.coef_.copy() for est in model.estimators_]
    assert model.compact_erasure_state() is model
    assert _stack_of(model).rank == 0
    for est, inverse, c in zip(model.estimators_, before, coef):
        assert_allclose(est.curvature_inverse_.to_dense(), inverse, rtol=1e-12)
        assert_array_equal(est.coef_, c)
    model.partial_forget(X[1:2], Y[1:2])  # requests go on from the folded stack


def test_batched_path_falls_back_where_it_does_not_apply():
    X, Y = _batched_data()
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    # More rows than parameters: the per-output path (a dense re-solve).
    model.partial_forget(X[:20], Y[:20])
    assert type(model.estimators_[0].curvature_inverse_) is BlockDiagonalInverse
    # The next request stacks the outputs again.
    model.partial_forget(X[20:22], Y[20:22])
    _stack_of(model)
    # An output with three classes, block_size and linearization="current":
    # per-output path, same results as before this change.
    Y3 = Y.copy()
    Y3[:, 0] += (X[:, 0] > 1).astype(int)
    for Yt, params in [
        (Y3, {}),
        (Y, {"block_size": 3}),
        (Y, {"linearization": "current"}),
    ]:
        model = ErasableMultiOutputClassifier(ErasableLogisticRegression(**params))
        model.fit(X, Yt).partial_forget(X[:3], Yt[:3])
        assert type(model.estimators_[1].curvature_inverse_) is BlockDiagonalInverse
        single = ErasableLogisticRegression(**params).fit(X, Yt[:, 1])
        single.partial_forget(X[:3], Yt[:3, 1])
        assert_allclose(model.estimators_[1].coef_, single.coef_, rtol=1e-10)


def test_sub_estimator_alone_after_batched_requests():
    X, Y = _batched_data()
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    model.partial_forget(X[:2], Y[:2])
    est = model.estimators_[1]
    reference = copy.deepcopy(est)  # folded, on its own
    assert type(reference.curvature_inverse_) is StackedBlockInverse
    for e in (est, reference):
        e.partial_forget(X[2:4], Y[2:4, 1])
    assert_allclose(est.coef_, reference.coef_, rtol=1e-12)
    assert type(est.curvature_inverse_) is BlockDiagonalInverse
    assert_allclose(est.predict_proba(X), reference.predict_proba(X), rtol=1e-12)
    # The wrapper's next request: a new stack, the changed output included.
    model.partial_forget(X[5:7], Y[5:7])
    _stack_of(model)
    assert model.estimators_[1].n_forgotten_ == 6


def test_pickle_is_folded_and_shares_the_gram(monkeypatch):
    monkeypatch.setattr(_stacked, "FOLD_RANK", 4)  # blocks of 7: eager by default
    X, Y = _batched_data()
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    grams = [est.erasure_state_.certificate_state.gram for est in model.estimators_]
    assert all(g is grams[0] for g in grams)  # one array for every output
    model.partial_forget(X[:1], Y[:1])
    assert _stack_of(model).rank == 1  # lazy: a factor, not a new base
    model.set_erasure_key(b"m" * 32)
    restored = pickle.loads(pickle.dumps(model)).set_erasure_key(b"m" * 32)
    for est in restored.estimators_:  # each output's inverse alone, folded
        inverse = est.curvature_inverse_
        assert inverse.stack.n_outputs == 1 and inverse.stack.rank == 0
    grams = [est.erasure_state_.certificate_state.gram for est in restored.estimators_]
    assert all(g is grams[0] for g in grams)
    _assert_same_models(restored, model, 1e-12)
    for m in (model, restored):
        m.partial_forget(X[1:4], Y[1:4])
    _stack_of(restored)  # stacked again at its first request
    _assert_same_models(restored, model, 1e-12)
    size = len(pickle.dumps(restored))
    L, P = Y.shape[1], X.shape[1] + 1
    assert size < 8 * (L * P * P + 2 * P * P) + 40_000


def test_batched_request_over_budget(monkeypatch):
    X, Y = _batched_data()
    base = ErasableLogisticRegression(certificate_budget=0.0, on_budget="raise")
    model = ErasableMultiOutputClassifier(base).fit(X, Y)
    state = _state(model)
    with pytest.raises(RefitRecommendedError, match="output 0: Refit recommended"):
        model.partial_forget(X[:2], Y[:2])
    assert _state(model) == state
    model.set_params(estimator__on_budget="warn")
    with pytest.warns(RefitRecommendedWarning):
        model.partial_forget(X[:2], Y[:2])
    _stack_of(model)
    assert all(
        est.request_records_[-1].within_budget is False for est in model.estimators_
    )


def test_batched_request_that_empties_a_class_is_uncertified(monkeypatch):
    X, Y = _batched_data()
    Y[:, 2] = 0
    Y[:3, 2] = 1  # three positives in output 2
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    looped = copy.deepcopy(model)
    model.partial_forget(X[:3], Y[:3])
    _stack_of(model)
    record = model.estimators_[2].request_records_[-1]
    assert record.certificate["cumulative_gradient_bound"] is None
    assert "lost all its rows" in record.certificate["note"]
    assert_array_equal(model.predict(X)[:, 2], 0)
    _per_output(monkeypatch)
    looped.partial_forget(X[:3], Y[:3])
    _assert_same_models(model, looped, 1e-10)


def test_batched_requests_use_the_rows_span_after_the_first(monkeypatch):
    """Past the first request (which carries the fit's residual) a request of up
    to four rows passes over the stack with its rows alone, to the same result."""
    X, Y = _batched_data()
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    plain = copy.deepcopy(model)
    spans = []
    inner = InverseStack.downdated_and_applied

    def recorded(self, U, G, limit=None, span=None):
        spans.append(span is not None)
        return inner(self, U, G, limit=limit, span=span)

    monkeypatch.setattr(InverseStack, "downdated_and_applied", recorded)
    for rows in _REQUESTS:
        model.partial_forget(X[rows], Y[rows])
    assert spans == [False, True, True, False, True]  # 1, 3, 1, 6, 1 rows
    monkeypatch.setattr(_multioutput_batch, "SPAN_MAX_ROWS", 0)
    for rows in _REQUESTS:
        plain.partial_forget(X[rows], Y[rows])
    _assert_same_models(model, plain, 1e-10)
