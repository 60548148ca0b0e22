"""ErasableLogisticRegression against its definitions, its twin and a refit."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from _data import flat_params as _params
from _data import scaled as _scaled
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, softmax
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse._linalg import sherman_morrison_inverse
from sklearn_ssse.estimator_checks import parametrize_with_forget_checks

TIGHT = dict(tol=1e-10, max_iter=10_000)


# -- a dense reference of METHOD.md, independent of the package's code ------------
def _reference(model, X, y, sample_weight=None):
    """Per-sample gradients, per-sample curvature and weights, all dense."""
    y_idx = np.searchsorted(model.classes_, y)
    scaling = model.intercept_scaling if model.solver == "liblinear" else 1.0
    Xt = np.hstack([X, np.full((len(X), 1), scaling)]) if model.fit_intercept else X
    Theta = model.coef_
    if model.fit_intercept:
        Theta = np.hstack([Theta, model.intercept_[:, None] / scaling])
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight)
    cw = compute_class_weight(
        model.class_weight, classes=model.classes_, y=y, sample_weight=sw
    )
    w = sw * cw[y_idx]
    if len(model.classes_) == 2:
        p = expit(Xt @ Theta[0])
        r = p - y_idx
        G = r[:, None] * Xt
        H = np.einsum("i,ij,ik->ijk", p * (1 - p), Xt, Xt)
    else:
        P = softmax(Xt @ Theta.T, axis=1)
        R = P - np.eye(P.shape[1])[y_idx]
        G = np.einsum("ia,ij->iaj", R, Xt).reshape(len(y), -1)
        A = np.einsum("ia,ab->iab", P, np.eye(P.shape[1])) - np.einsum(
            "ia,ib->iab", P, P
        )
        H = np.einsum("iab,ij,ik->iajbk", A, Xt, Xt).reshape(len(y), G.shape[1], -1)
    F = np.einsum("ij,ik->ijk", G, G)
    penalized = np.ones(Theta.shape, dtype=bool)
    if model.fit_intercept and model.solver != "liblinear":
        penalized[:, -1] = False
    return dict(G=G, H=H, F=F, w=w, theta=Theta.ravel(), penalized=penalized.ravel())


def _reference_matrix(model, ref, kind, rows=None):
    C = model.C if np.isfinite(model.C) else 1.0
    K = ref["F"] if kind == "fisher" else ref["H"]
    rows = slice(None) if rows is None else rows
    data = C * np.einsum("i,ijk->jk", ref["w"][rows], K[rows])
    return data


def _damping_matrix(model, penalized, floor_from, whole=True):
    """METHOD.md's λ·P plus the floor, plus the data scale along the softmax's flat
    intercept direction when the block holds all of it (ModelMaths.null_directions).
    """
    damping = model.damping
    if damping is None:
        damping = 1.0 if np.isfinite(model.C) else 0.0
    scale = np.mean(np.diag(floor_from))
    D = np.diag(damping * penalized + np.sqrt(np.finfo(float).eps) * scale)
    n_classes = len(model.classes_)
    if whole and n_classes > 2 and model.fit_intercept:
        v = np.zeros((n_classes, len(penalized) // n_classes))
        v[:, -1] = 1 / np.sqrt(n_classes)
        D += scale * np.outer(v.ravel(), v.ravel())
    return D


def _add_damping(model, data, penalized, floor_from=None, whole=True):
    floor_from = data if floor_from is None else floor_from
    return data + _damping_matrix(model, penalized, floor_from, whole)


def _assert_close(actual, expected, rtol=1e-8):
    """Norm-wise relative error: inverses of ill-conditioned blocks are accurate in
    norm, not entry by entry."""
    error = np.linalg.norm(actual - expected) / np.linalg.norm(expected)
    assert error < rtol, error


# -- drop-in -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"fit_intercept": False},
        {"C": 0.1, "class_weight": "balanced"},
        {"solver": "newton-cholesky"},
        {"solver": "newton-cg"},
        {"solver": "sag", "random_state": 0},
        {"solver": "liblinear"},
        {"C": np.inf},
    ],
)
@pytest.mark.parametrize("sparse_X", [False, True])
def test_fit_is_logistic_regression_bit_for_bit(binary_data, params, sparse_X):
    X, y = binary_data
    X = sp.csr_matrix(X) if sparse_X else X
    sw = np.linspace(0.5, 1.5, len(y))
    ours = ErasableLogisticRegression(**params).fit(X, y, sample_weight=sw)
    theirs = LogisticRegression(**params).fit(X, y, sample_weight=sw)
    assert_array_equal(ours.coef_, theirs.coef_)
    assert_array_equal(ours.intercept_, theirs.intercept_)
    assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))


def test_fit_multiclass_float32_is_logistic_regression(multiclass_data):
    X, y = multiclass_data
    X = X.astype(np.float32)
    ours = ErasableLogisticRegression().fit(X, y)
    theirs = LogisticRegression().fit(X, y)
    assert_array_equal(ours.coef_, theirs.coef_)
    assert ours.coef_.dtype == theirs.coef_.dtype  # float32 (1.8: float64)
    assert ours.curvature_inverse_.dtype == theirs.coef_.dtype


# -- curvature against its definition ------------------------------------------------
@pytest.mark.parametrize("kind", ["fisher", "hessian"])
@pytest.mark.parametrize("data", ["binary", "multiclass"])
@pytest.mark.parametrize("sparse_X", [False, True])
def test_curvature_equals_definition(
    kind, data, sparse_X, binary_data, multiclass_data
):
    X, y = binary_data if data == "binary" else multiclass_data
    X = X[:, :6]
    sw = np.linspace(0.5, 1.5, len(y))
    model = ErasableLogisticRegression(curvature=kind, class_weight="balanced")
    model.fit(sp.csr_matrix(X) if sparse_X else X, y, sample_weight=sw)
    ref = _reference(model, X, y, sw)
    M = _add_damping(model, _reference_matrix(model, ref, kind), ref["penalized"])
    _assert_close(model.curvature_inverse_.to_dense(), np.linalg.inv(M))


@pytest.mark.parametrize("block_size", ["class", 5])
def test_blocks_are_diagonal_blocks_of_the_definition(multiclass_data, block_size):
    X, y = multiclass_data
    X = X[:, :6]
    model = ErasableLogisticRegression(curvature="hessian", block_size=block_size)
    model.fit(X, y)
    ref = _reference(model, X, y)
    data = _reference_matrix(model, ref, "hessian")
    inverse = model.curvature_inverse_
    expected_bounds = (
        [(0, 7), (7, 14), (14, 21)]
        if block_size == "class"
        else [(0, 5), (5, 10), (10, 15), (15, 20), (20, 21)]
    )
    assert inverse.bounds == expected_bounds
    for (s, e), block_inverse in zip(inverse.bounds, inverse.inverses):
        block = data[s:e, s:e]
        M = _add_damping(model, block, ref["penalized"][s:e], whole=False)
        _assert_close(block_inverse, np.linalg.inv(M))


@pytest.mark.parametrize("data", ["binary", "multiclass"])
def test_blocked_build_equals_rank_one_recursion(data, binary_data, multiclass_data):
    """Level-3 build == the paper's eq. 7 (n Sherman–Morrison steps) to ~1e-8."""
    X, y = binary_data if data == "binary" else multiclass_data
    model = ErasableLogisticRegression(C=0.5, curvature="fisher").fit(X, y)
    ref = _reference(model, X, y)
    data_term = _reference_matrix(model, ref, "fisher")
    D = _damping_matrix(model, ref["penalized"], data_term)
    expected = sherman_morrison_inverse(ref["G"], model.C * ref["w"], D)
    _assert_close(model.curvature_inverse_.to_dense(), expected)


def test_fisher_batch_size_sums_gradients_over_shuffled_batches(binary_data):
    X, y = binary_data
    X = X[:, :5]
    model = ErasableLogisticRegression(
        curvature="fisher", fisher_batch_size=4, random_state=3
    ).fit(X, y)
    ref = _reference(model, X, y)
    order = np.random.RandomState(3).permutation(len(y))
    G = ref["G"][order] * np.sqrt(ref["w"][order])[:, None]
    sums = np.add.reduceat(G, np.arange(0, len(y), 4))
    data = model.C * sums.T @ sums
    M = _add_damping(model, data, ref["penalized"])
    _assert_close(model.curvature_inverse_.to_dense(), np.linalg.inv(M))


# -- the update against its definition -----------------------------------------------
@pytest.mark.parametrize("kind", ["fisher", "hessian"])
@pytest.mark.parametrize("leave_out", [True, False])
@pytest.mark.parametrize("data", ["binary", "multiclass"])
def test_update_equals_definition(kind, leave_out, data, binary_data, multiclass_data):
    X, y = binary_data if data == "binary" else multiclass_data
    X = X[:, :6]
    S, keep = np.arange(5), np.arange(5, len(y))
    model = ErasableLogisticRegression(
        curvature=kind, leave_out=leave_out, forget_scale=0.7, C=2.0
    ).fit(X, y)
    ref = _reference(model, X, y)
    data_all = _reference_matrix(model, ref, kind)
    data_keep = _reference_matrix(model, ref, kind, rows=keep)
    M = _add_damping(
        model, data_keep if leave_out else data_all, ref["penalized"], data_all
    )
    residual = model.C * ref["w"] @ ref["G"] + ref["penalized"] * ref["theta"]
    gradient = residual - model.C * ref["w"][S] @ ref["G"][S]
    expected = ref["theta"] - 0.7 * np.linalg.solve(M, gradient)

    model.partial_forget(X[S], y[S])
    assert_allclose(_params(model), expected, rtol=1e-7, atol=1e-9)
    # the stored curvature no longer contains S (rebuilt where it was built)
    M_keep = _add_damping(model, data_keep, ref["penalized"], data_all)
    assert_allclose(
        model.curvature_inverse_.to_dense(), np.linalg.inv(M_keep), rtol=1e-7
    )


@pytest.mark.parametrize("n_forget", [3, 60])  # Woodbury route, dense re-solve route
def test_sequential_requests_leave_the_rebuilt_curvature(multiclass_data, n_forget):
    X, y = multiclass_data
    X = X[:, :4]
    model = ErasableLogisticRegression(curvature="hessian").fit(X, y)
    ref = _reference(model, X, y)
    data_all = _reference_matrix(model, ref, "hessian")
    first, second = np.arange(n_forget), np.arange(n_forget, 2 * n_forget)
    model.partial_forget(X[first], y[first]).partial_forget(X[second], y[second])
    keep = np.arange(2 * n_forget, len(y))
    M_keep = _add_damping(
        model,
        _reference_matrix(model, ref, "hessian", keep),
        ref["penalized"],
        data_all,
    )
    assert_allclose(
        model.curvature_inverse_.to_dense(), np.linalg.inv(M_keep), rtol=1e-6
    )
    assert model.n_forgotten_ == 2 * n_forget
    assert_array_equal(model.residual_gradient_, 0)


# -- fidelity to a refit ---------------------------------------------------------
def _relative_distance(model, forget, keep, X, y, sample_weight=None, **params):
    model = ErasableLogisticRegression(**TIGHT, **params).fit(
        X, y, sample_weight=sample_weight
    )
    sw_keep = None if sample_weight is None else sample_weight[keep]
    refit = clone(model).fit(X[keep], y[keep], sample_weight=sw_keep)
    original = _params(model)
    sw_forget = None if sample_weight is None else sample_weight[forget]
    model.partial_forget(X[forget], y[forget], sample_weight=sw_forget)
    target = _params(refit)
    return np.linalg.norm(_params(model) - target) / np.linalg.norm(original - target)


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine, load_iris])
@pytest.mark.parametrize("seed", [0, 1])
def test_hessian_update_is_close_to_refit(loader, seed):
    """Influence update, leave-out, ε = 1: within 5 % of the refit for 1 % deleted."""
    X, y = _scaled(loader)
    rng = np.random.default_rng(seed)
    forget = rng.choice(len(y), max(len(y) // 100, 1), replace=False)
    keep = np.setdiff1d(np.arange(len(y)), forget)
    distance = _relative_distance(None, forget, keep, X, y, curvature="hessian")
    assert distance < 0.05


@pytest.mark.parametrize(
    "params, tolerance",
    [
        ({"class_weight": "balanced"}, 0.05),
        ({"class_weight": {0: 1.0, 1: 3.0, 2: 0.5}}, 0.05),
        ({"fit_intercept": False}, 0.05),
        ({"solver": "newton-cholesky"}, 0.05),
        # one block per class drops the cross-class curvature: still a step toward
        # the refit, but a much rougher one
        ({"block_size": "class"}, 0.5),
    ],
)
def test_hessian_update_is_close_to_refit_with_options(params, tolerance):
    X, y = _scaled(load_wine)
    forget = np.array([0, 70, 150])  # one row of each class
    keep = np.setdiff1d(np.arange(len(y)), forget)
    distance = _relative_distance(
        None, forget, keep, X, y, curvature="hessian", **params
    )
    assert distance < tolerance


def test_hessian_update_with_sample_weight_and_liblinear(binary_data):
    X, y = _scaled(load_breast_cancer)
    sw = np.random.default_rng(0).uniform(0.5, 2, len(y))
    forget = np.arange(0, len(y), 60)
    keep = np.setdiff1d(np.arange(len(y)), forget)
    for solver in ("lbfgs", "liblinear"):
        distance = _relative_distance(
            None,
            forget,
            keep,
            X,
            y,
            sample_weight=sw,
            curvature="hessian",
            solver=solver,
        )
        assert distance < 0.05, solver


def test_balanced_class_weight_reweighting_matters():
    """Forgetting much of one class changes every row's weight; the step sees it."""
    X, y = _scaled(load_wine)
    forget = np.flatnonzero(y == 1)[:30]
    keep = np.setdiff1d(np.arange(len(y)), forget)
    params = dict(curvature="hessian", class_weight="balanced", **TIGHT)
    distances = []
    for reweight in (True, False):
        model = ErasableLogisticRegression(**params).fit(X, y)
        refit = clone(model).fit(X[keep], y[keep])
        original = _params(model)
        if not reweight:
            # as if the weights stayed fixed
            model.erasure_state_ = model.erasure_state_.replace(
                class_gradient_sums=None
            )
        model.partial_forget(X[forget], y[forget])
        distances.append(
            np.linalg.norm(_params(model) - _params(refit))
            / np.linalg.norm(original - _params(refit))
        )
    assert distances[0] < 0.25
    assert distances[0] < 0.8 * distances[1]


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine])
def test_fisher_update_moves_toward_refit_for_some_scale(loader):
    X, y = _scaled(loader)
    forget = np.random.default_rng(0).choice(len(y), len(y) // 50, replace=False)
    keep = np.setdiff1d(np.arange(len(y)), forget)
    distances = [
        _relative_distance(None, forget, keep, X, y, forget_scale=eps)
        for eps in np.logspace(-2, 1, 7)
    ]
    assert min(distances) < 0.9


def test_sequential_requests_track_the_refit():
    X, y = _scaled(load_breast_cancer)
    model = ErasableLogisticRegression(curvature="hessian", **TIGHT).fit(X, y)
    original = _params(model)
    for part in np.array_split(np.arange(0, 30), 3):
        model.partial_forget(X[part], y[part])
    refit = clone(model).fit(X[30:], y[30:])
    distance = np.linalg.norm(_params(model) - _params(refit))
    assert distance < 0.05 * np.linalg.norm(original - _params(refit))


def test_sparse_and_dense_forget_agree(multiclass_data):
    X, y = multiclass_data
    dense = ErasableLogisticRegression().fit(X, y).partial_forget(X[:4], y[:4])
    Xs = sp.csr_matrix(X)
    sparse = ErasableLogisticRegression().fit(Xs, y).partial_forget(Xs[:4], y[:4])
    assert_allclose(_params(dense), _params(sparse), rtol=1e-7, atol=1e-10)


# -- whole classes forgotten -----------------------------------------------------------
def test_forgetting_a_whole_class_stops_predicting_it(multiclass_data):
    X, y = multiclass_data
    model = ErasableLogisticRegression().fit(X, y)
    rows = np.flatnonzero(y == 0)
    model.partial_forget(X[rows], y[rows])
    assert model.class_counts_[0] == 0
    assert_array_equal(model.coef_[0], 0)
    assert model.intercept_[0] == 0
    assert not np.any(model.predict(X) == 0)
    assert_array_equal(model.predict_proba(X)[:, 0], 0)
    assert_allclose(model.predict_proba(X).sum(axis=1), 1)
    with pytest.raises(ValueError, match="more rows than remain"):
        model.partial_forget(X[rows[:1]], y[rows[:1]])
    # later requests still work and keep the class out
    other = np.flatnonzero(y == 1)[:3]
    model.partial_forget(X[other], y[other])
    assert not np.any(model.predict(X) == 0)
    assert_array_equal(model.coef_[0], 0)


def test_binary_model_left_with_one_class_predicts_it(binary_data):
    X, y = binary_data
    model = ErasableLogisticRegression().fit(X, y)
    rows = np.flatnonzero(y == 0)
    model.partial_forget(X[rows], y[rows])
    assert_array_equal(model.predict(X), 1)
    assert_array_equal(model.predict_proba(X), np.tile([0.0, 1.0], (len(y), 1)))
    with pytest.raises(ValueError, match="every remaining"):
        keep = np.flatnonzero(y == 1)
        model.partial_forget(X[keep], y[keep])


# -- bad input and unsupported configurations ------------------------------------------
def _state(model):
    return pickle.dumps(model.__dict__)


def test_bad_requests_raise_and_leave_the_model_unchanged(multiclass_data):
    X, y = multiclass_data
    model = ErasableLogisticRegression().fit(X, y)
    state = _state(model)
    X_inf = X[:2].copy()
    X_inf[1, 3] = np.inf
    cases = [
        (X[:2, :5], y[:2], None, "features"),
        (X_inf, y[:2], None, "infinity"),
        (X[:2], np.array([0, 7]), None, "not seen in fit"),
        (X[:3], y[:2], None, "inconsistent"),
        (X[:3], y[:3], np.ones(2), "sample_weight"),
        (X, y, None, "every remaining"),
    ]
    for X_bad, y_bad, sw, message in cases:
        with pytest.raises(ValueError, match=message):
            model.partial_forget(X_bad, y_bad, sample_weight=sw)
        assert _state(model) == state
    for params, message in [
        ({"curvature": "fisher"}, "call fit again"),
        ({"curvature": "hessian", "C": 100.0}, "call fit again"),
        ({"C": 1.0, "fit_intercept": False}, "call fit again"),
        ({"fit_intercept": True, "forget_scale": -1.0}, "forget_scale"),
    ]:
        state = _state(model.set_params(**params))
        with pytest.raises(ValueError, match=message):
            model.partial_forget(X[:2], y[:2])
        assert _state(model) == state


def test_numerical_failure_leaves_the_model_unchanged(multiclass_data, monkeypatch):
    X, y = multiclass_data
    model = ErasableLogisticRegression().fit(X, y)
    state = _state(model)

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("boom")

    monkeypatch.setattr(type(model.curvature_inverse_), "downdated", broken)
    monkeypatch.setattr(type(model.curvature_inverse_), "downdated_and_applied", broken)
    with pytest.raises(ValueError, match="unchanged"):
        model.partial_forget(X[:2], y[:2])
    assert _state(model) == state


def test_unfitted_model_refuses_to_forget(binary_data):
    X, y = binary_data
    with pytest.raises(NotFittedError):
        ErasableLogisticRegression().partial_forget(X[:2], y[:2])


def test_unpenalized_model_stays_invertible(binary_data):
    X, y = binary_data
    model = ErasableLogisticRegression(C=np.inf, curvature="hessian", **TIGHT)
    model.fit(X[:, :5], y).partial_forget(X[:3, :5], y[:3])
    assert np.all(np.isfinite(model.coef_))


def test_scale_and_leave_out_may_change_after_fit(binary_data):
    X, y = binary_data
    a = ErasableLogisticRegression(forget_scale=1.0).fit(X, y)
    b = clone(a).fit(X, y).set_params(forget_scale=2.0)
    theta0 = _params(a)
    a.partial_forget(X[:3], y[:3])
    b.partial_forget(X[:3], y[:3])
    assert_allclose(_params(b) - theta0, 2 * (_params(a) - theta0), rtol=1e-10)


# -- scikit-learn's checks and ours -------------------------------------------------
ESTIMATORS = [
    ErasableLogisticRegression(),
    ErasableLogisticRegression(curvature="hessian", block_size="class"),
    ErasableLogisticRegression(
        curvature="fisher", block_size=3, fisher_batch_size=2, random_state=0
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@parametrize_with_forget_checks(ESTIMATORS)
def test_partial_forget_checks(estimator, check):
    check(type(estimator).__name__, estimator)


def test_feature_names_survive_fit_and_forget(binary_data):
    pd = pytest.importorskip("pandas")
    X, y = binary_data
    frame = pd.DataFrame(X[:, :4], columns=["a", "b", "c", "d"])
    model = ErasableLogisticRegression().fit(frame, y)
    assert list(model.feature_names_in_) == ["a", "b", "c", "d"]
    model.partial_forget(frame.iloc[:3], y[:3])
    assert model.n_forgotten_ == 3


def test_mini_batch_fisher_forgets_a_whole_class(multiclass_data):
    """A mini-batch Fisher is low-rank; removing a class's own outer products
    would exceed it, so the removal is projected (never an indefinite matrix)."""
    X, y = multiclass_data
    model = ErasableLogisticRegression(
        curvature="fisher", fisher_batch_size=8, random_state=0
    ).fit(X, y)
    rows = np.flatnonzero(y == 0)
    model.partial_forget(X[rows], y[rows])
    assert np.all(np.linalg.eigvalsh(model.curvature_inverse_.to_dense()) > 0)
    assert not np.any(model.predict(X) == 0)
