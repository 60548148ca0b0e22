"""Tests of ErasableMLPClassifier and of the MLP maths (per-sample backprop)."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import log_softmax
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPClassifier
from sklearn.utils import check_random_state
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ssse._mlp_maths import MLPMaths
from sklearn_ssse.estimator_checks import parametrize_with_forget_checks
from sklearn_ssse.neural_network import ErasableMLPClassifier

ACTIVATIONS = ["identity", "logistic", "tanh", "relu"]

# sklearn's own common tests keep MLPClassifier fast with max_iter=100; a small
# hidden layer keeps the stored curvature small as well.
FAST = dict(hidden_layer_sizes=(10,), max_iter=100)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@parametrize_with_checks(
    [
        ErasableMLPClassifier(**FAST),
        ErasableMLPClassifier(**FAST, solver="lbfgs", block_size="class"),
    ],
    # No known failures: every scikit-learn check passes.
    expected_failed_checks=lambda est: {},
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@parametrize_with_forget_checks(
    [
        ErasableMLPClassifier(
            hidden_layer_sizes=(6,), solver="lbfgs", max_iter=200, random_state=0
        ),
        ErasableMLPClassifier(
            hidden_layer_sizes=(6, 4), activation="tanh", max_iter=50, random_state=0
        ),
    ]
)
def test_partial_forget_checks(estimator, check):
    check(type(estimator).__name__, estimator)


# -- helpers ------------------------------------------------------------------------
def _tiny_problem(n_classes, seed=0, n_samples=40, n_features=4):
    X, y = make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        n_clusters_per_class=1,
        random_state=seed,
    )
    return X, y


def _random_network(X, y, activation, hidden=(5, 3), seed=0):
    """An MLPClassifier (sklearn's, for reference) with random float64 weights."""
    ref = MLPClassifier(
        hidden_layer_sizes=hidden, activation=activation, max_iter=1, random_state=seed
    ).fit(X, y)
    rng = check_random_state(seed)
    ref.coefs_ = [rng.normal(scale=0.8, size=W.shape) for W in ref.coefs_]
    ref.intercepts_ = [rng.normal(scale=0.5, size=b.shape) for b in ref.intercepts_]
    units = [X.shape[1], *hidden, ref.coefs_[-1].shape[1]]
    maths = MLPMaths(units, activation)
    return ref, maths, maths.pack(ref.coefs_, ref.intercepts_)


def _log_losses(ref, maths, theta, X, y_idx):
    """Per-row log-loss of sklearn's network at ``theta`` (its own forward pass).

    The logits come from scikit-learn's forward pass with an identity output; the
    loss is then taken in a numerically stable form.
    """
    ref.coefs_, ref.intercepts_ = maths.unpack(theta)
    output, ref.out_activation_ = ref.out_activation_, "identity"
    logits = ref._forward_pass_fast(X)
    ref.out_activation_ = output
    if logits.shape[1] == 1:  # binary: one logistic unit for the positive class
        logits = np.hstack([np.zeros_like(logits), logits])
    return -log_softmax(logits, axis=1)[np.arange(len(y_idx)), y_idx]


# -- maths: gradients and curvature ------------------------------------------------
def test_parameter_order_is_layer_by_layer():
    maths = MLPMaths([3, 4, 2, 1], "relu")
    assert maths.n_params == 3 * 4 + 4 + 4 * 2 + 2 + 2 * 1 + 1
    assert maths.group_bounds() == [(0, 16), (16, 26), (26, 29)]
    coefs = [np.arange(12.0).reshape(3, 4), np.ones((4, 2)), np.zeros((2, 1))]
    intercepts = [np.full(4, -1.0), np.full(2, -2.0), np.full(1, -3.0)]
    theta = maths.pack(coefs, intercepts)
    assert_array_equal(theta[:12], np.arange(12.0))
    assert_array_equal(theta[12:16], -1.0)
    assert_array_equal(theta[~maths.weight_mask()], [-1.0] * 4 + [-2.0] * 2 + [-3.0])
    coefs2, intercepts2 = maths.unpack(theta)
    for a, b in zip(coefs + intercepts, coefs2 + intercepts2):
        assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradients_match_finite_differences(activation, n_classes):
    X, y = _tiny_problem(n_classes, n_samples=12)
    ref, maths, theta = _random_network(X, y, activation)
    active = np.ones(n_classes, dtype=bool)
    G = maths.gradient_rows(X, y, theta, active)
    assert G.shape == (len(y), maths.n_params)

    h = 1e-6
    numeric = np.empty_like(G)
    for j in range(maths.n_params):  # a loop over parameters, not samples
        step = np.zeros_like(theta)
        step[j] = h
        numeric[:, j] = (
            _log_losses(ref, maths, theta + step, X, y)
            - _log_losses(ref, maths, theta - step, X, y)
        ) / (2 * h)
    assert_allclose(G, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_gradient_sum_matches_sklearn_backprop(activation, n_classes):
    # Σ_i g_i + alpha·W is n × the gradient scikit-learn's L-BFGS sees.
    X, y = _tiny_problem(n_classes, n_samples=30)
    ref, maths, theta = _random_network(X, y, activation)
    ref.alpha = 0.3
    n_layers = len(ref.coefs_)
    Y = ref._label_binarizer.transform(y).astype(bool)
    _, coef_grads, intercept_grads = ref._backprop(
        X,
        Y,
        None,
        [X] + [None] * n_layers,
        [None] * n_layers,
        [None] * n_layers,
        [None] * n_layers,
    )
    expected = maths.pack(coef_grads, intercept_grads) * len(y)
    G = maths.gradient_rows(X, y, theta, np.ones(n_classes, dtype=bool))
    got = G.sum(axis=0) + ref.alpha * maths.weight_mask() * theta
    assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_gradients_of_sparse_input_match_dense():
    X, y = _tiny_problem(3)
    X[X < 0] = 0
    _, maths, theta = _random_network(X, y, "relu")
    active = np.ones(3, dtype=bool)
    assert_allclose(
        maths.gradient_rows(sp.csr_matrix(X), y, theta, active),
        maths.gradient_rows(X, y, theta, active),
    )


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("block_size", [None, "class", 7])
def test_fisher_matches_its_definition(n_classes, block_size):
    # M = λ·P + Σ w_i g_i g_iᵀ (+ floor) per block, as a dense sum of outer products.
    X, y = _tiny_problem(n_classes, n_samples=40, n_features=3)
    w = check_random_state(1).uniform(0.5, 2.0, size=len(y))
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(4,),
        activation="tanh",
        solver="lbfgs",
        alpha=0.1,
        max_iter=300,
        random_state=0,
        block_size=block_size,
        curvature="fisher",
        damping=None,
    ).fit(X, y, sample_weight=w)
    maths = est._erasure_maths()
    theta = maths.pack(est.coefs_, est.intercepts_)
    G = maths.gradient_rows(X, y, theta, np.ones(n_classes, dtype=bool))
    fisher = sum(w[i] * np.outer(G[i], G[i]) for i in range(len(y)))
    mask = maths.weight_mask()
    null = maths.null_directions()  # the softmax's output-intercept shift
    assert null.shape[1] == (n_classes > 2)
    assert_allclose(G @ null, 0, atol=1e-12)
    for (start, stop), inverse in zip(
        est.curvature_inverse_.bounds, est.curvature_inverse_.inverses
    ):
        block = fisher[start:stop, start:stop].copy()
        scale = np.diag(block).mean()
        # Damping λ = alpha on every coordinate, intercepts included.
        block[np.diag_indices_from(block)] += (
            est.alpha + np.sqrt(np.finfo(float).eps) * scale
        )
        for u in null[start:stop].T:  # given the data's scale when in one block
            if np.isclose(np.linalg.norm(u), 1.0):
                block += scale * np.outer(u, u)
        assert_allclose(np.linalg.inv(inverse), block, rtol=1e-7, atol=1e-10)
    # The solver's leftover gradient of Σ w_i ℓ_i + ½ alpha ‖W‖² (weights only).
    assert_allclose(
        est.residual_gradient_,
        w @ G + est.alpha * mask * theta,
        rtol=1e-7,
        atol=1e-10,
    )
    # Per-layer blocks for "class".
    if block_size == "class":
        assert est.curvature_inverse_.bounds == maths.group_bounds()


# -- the estimator ------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["lbfgs", "adam", "sgd"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fit_is_mlpclassifier(solver, n_classes):
    X, y = _tiny_problem(n_classes, n_samples=60)
    w = check_random_state(0).uniform(0.5, 2.0, size=len(y))
    params = dict(hidden_layer_sizes=(7,), solver=solver, max_iter=50, random_state=0)
    ours = ErasableMLPClassifier(**params).fit(X, y, sample_weight=w)
    ref = MLPClassifier(**params).fit(X, y, sample_weight=w)
    for a, b in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        assert_array_equal(a, b)
    assert_array_equal(ours.predict_proba(X), ref.predict_proba(X))
    assert_array_equal(ours.predict(X), ref.predict(X))
    assert ours.n_iter_ == ref.n_iter_
    params_ours = ours.get_params()
    for name, value in ref.get_params().items():
        assert params_ours[name] == value


def test_update_equals_its_definition():
    # θ_new = θ − ε M_{-S}⁻¹ (r₀ − Σ_{i∈S} w_i g_i), M_{-S} the leave-k-out curvature.
    X, y = _tiny_problem(3, n_samples=50)
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(4,),
        activation="relu",
        solver="lbfgs",
        alpha=0.05,
        max_iter=300,
        random_state=0,
        block_size=None,
        forget_scale=0.3,
        curvature="fisher",
        damping=None,
    ).fit(X, y)
    maths = est._erasure_maths()
    theta = est.curvature_point_.copy()
    M = np.linalg.inv(est.curvature_inverse_.to_dense())
    S = np.arange(6)
    G = maths.gradient_rows(X[S], y[S], theta, np.ones(3, dtype=bool))
    M_out = M - G.T @ G
    expected = theta - 0.3 * np.linalg.solve(
        M_out, est.residual_gradient_ - G.sum(axis=0)
    )
    est.partial_forget(X[S], y[S])
    assert_allclose(maths.pack(est.coefs_, est.intercepts_), expected, rtol=1e-6)
    assert_allclose(
        np.linalg.inv(est.curvature_inverse_.to_dense()), M_out, rtol=1e-6, atol=1e-9
    )
    assert est.n_forgotten_ == 6
    assert_array_equal(est.residual_gradient_, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_partial_forget_keeps_dtype_and_attribute_shapes(dtype):
    X, y = _tiny_problem(3, n_samples=60)
    X = X.astype(dtype)
    # adam keeps float32 weights (lbfgs, like MLPClassifier's, returns float64).
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(5, 3), solver="adam", max_iter=50, random_state=0
    ).fit(X, y)
    shapes = [a.shape for a in est.coefs_ + est.intercepts_]
    est.partial_forget(X[:5], y[:5])
    assert [a.shape for a in est.coefs_ + est.intercepts_] == shapes
    assert all(a.dtype == dtype for a in est.coefs_ + est.intercepts_)
    assert est.curvature_inverse_.dtype == dtype
    assert est.predict_proba(X).dtype == dtype


def test_sparse_fit_and_forget_match_dense():
    X, y = _tiny_problem(3, n_samples=60)
    X[X < 0] = 0
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=100, random_state=0)
    dense = ErasableMLPClassifier(**params).fit(X, y).partial_forget(X[:4], y[:4])
    sparse = (
        ErasableMLPClassifier(**params)
        .fit(sp.csr_matrix(X), y)
        .partial_forget(sp.csr_matrix(X[:4]), y[:4])
    )
    # L-BFGS itself differs in the last digits between sparse and dense products.
    for a, b in zip(dense.coefs_, sparse.coefs_):
        assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_string_labels_and_refit_reset_state():
    X, y = _tiny_problem(3, n_samples=60)
    labels = np.array(["ant", "bee", "cat"])[y]
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(5,), solver="lbfgs", max_iter=100, random_state=0
    ).fit(X, labels)
    est.partial_forget(X[labels == "bee"], labels[labels == "bee"])
    assert "bee" not in est.predict(X)
    est.fit(X, labels)  # a new fit starts a fresh state
    assert est.n_forgotten_ == 0
    assert_array_equal(est.class_counts_, np.bincount(y))


def test_forgetting_a_class_removes_it_from_predictions():
    X, y = _tiny_problem(3, n_samples=60)
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(5,),
        solver="lbfgs",
        max_iter=200,
        random_state=0,
        forget_scale=0.01,
    ).fit(X, y)
    est.partial_forget(X[y == 1][:3], y[y == 1][:3])
    assert np.all(est.predict_proba(X)[:, 1] > 0)  # still present
    est.partial_forget(X[y == 1][3:], y[y == 1][3:])
    proba = est.predict_proba(X)
    assert_array_equal(proba[:, 1], 0)
    assert_allclose(proba.sum(axis=1), 1)
    assert 1 not in est.predict(X)
    assert np.all(np.isneginf(est.predict_log_proba(X)[:, 1]))
    assert est.score(X[y != 1], y[y != 1]) > 0.5


def test_forgetting_a_binary_class_predicts_the_other():
    X, y = _tiny_problem(2, n_samples=40)
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(5,), solver="lbfgs", max_iter=200, random_state=0
    ).fit(X, y)
    est.partial_forget(X[y == 0], y[y == 0])
    assert_array_equal(est.predict(X), 1)
    assert_array_equal(est.predict_proba(X), np.tile([0.0, 1.0], (len(y), 1)))
    with pytest.raises(ValueError, match="every remaining"):
        est.partial_forget(X[y == 1], y[y == 1])


def test_partial_forget_refuses_multilabel():
    rng = check_random_state(0)
    X = rng.normal(size=(30, 4))
    Y = (rng.uniform(size=(30, 3)) > 0.5).astype(int)
    est = ErasableMLPClassifier(hidden_layer_sizes=(4,), max_iter=20).fit(X, Y)
    assert not hasattr(est, "curvature_inverse_")
    assert est.predict(X).shape == Y.shape
    with pytest.raises(ValueError, match="multi-label"):
        est.partial_forget(X[:2], Y[:2])


def test_partial_fit_drops_the_erasure_state():
    X, y = _tiny_problem(3, n_samples=60)
    est = ErasableMLPClassifier(hidden_layer_sizes=(5,), max_iter=20).fit(X, y)
    est.partial_fit(X, y)
    with pytest.raises(NotFittedError, match="partial_fit"):
        est.partial_forget(X[:2], y[:2])
    est.fit(X, y).partial_forget(X[:2], y[:2])
    assert not hasattr(
        ErasableMLPClassifier(solver="lbfgs"), "partial_fit"
    )  # as MLPClassifier


def test_changed_curvature_params_are_refused_unchanged():
    X, y = _tiny_problem(3, n_samples=60)
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(5,), solver="lbfgs", max_iter=100, random_state=0
    ).fit(X, y)
    state = pickle.dumps(est.__dict__)
    est.set_params(block_size=3)
    with pytest.raises(ValueError, match="block_size"):
        est.partial_forget(X[:2], y[:2])
    est.set_params(block_size=1024)
    assert pickle.dumps(est.__dict__) == state
    est.set_params(forget_scale=0.5, leave_out=False).partial_forget(X[:2], y[:2])


def test_erasing_a_digit_moves_predictions_away_from_it():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(16,),
        solver="lbfgs",
        alpha=1.0,
        max_iter=200,
        random_state=0,
        block_size="class",
        forget_scale=0.5,
        curvature="fisher",
        damping=None,
    ).fit(X, y)
    erased = y == 3
    assert np.mean(est.predict(X[erased]) == 3) > 0.95
    # Half of the class: fewer of its erased rows are predicted as 3, the other
    # digits keep their accuracy.
    half = np.flatnonzero(erased)[::2]
    # (Loose bounds: L-BFGS lands on a different network with another BLAS.)
    partial = pickle.loads(pickle.dumps(est)).partial_forget(X[half], y[half])
    assert np.mean(partial.predict(X[half]) == 3) < 0.8
    assert np.mean(partial.predict(X[~erased]) == y[~erased]) > 0.97
    # All of it, in one request: the class vanishes, its output unit is cleared.
    est.set_params(forget_scale=0.3).partial_forget(X[erased], y[erased])
    assert_array_equal(est.coefs_[-1][:, 3], 0)
    assert est.intercepts_[-1][3] == 0
    assert 3 not in est.predict(X)
    assert np.mean(est.predict(X[~erased]) == y[~erased]) > 0.97


def test_mini_batch_fisher_forgets_a_whole_class():
    """Removing a class's outer products from a low-rank mini-batch Fisher is
    projected instead of refused."""
    from sklearn.datasets import load_digits

    X, y = load_digits(n_class=4, return_X_y=True)
    X = X / 16.0
    model = ErasableMLPClassifier(
        hidden_layer_sizes=(8,),
        solver="lbfgs",
        max_iter=200,
        random_state=0,
        fisher_batch_size=10,
        curvature="fisher",
        forget_scale=0.05,
    ).fit(X, y)
    rows = y == 2
    model.partial_forget(X[rows], y[rows])
    assert not np.any(model.predict(X) == 2)


# -- Gauss–Newton curvature ----------------------------------------------------------
def _logit_jacobian(ref, maths, theta, X):
    """Dense ``∂z_i/∂θ`` of sklearn's own forward pass, by central differences."""

    def logits(t):
        ref.coefs_, ref.intercepts_ = maths.unpack(t)
        output, ref.out_activation_ = ref.out_activation_, "identity"
        z = ref._forward_pass_fast(X)
        ref.out_activation_ = output
        return z

    h = 1e-6
    J = np.empty((X.shape[0], maths.n_outputs, maths.n_params))
    for j in range(maths.n_params):  # a loop over parameters, not samples
        step = np.zeros_like(theta)
        step[j] = h
        J[:, :, j] = (logits(theta + step) - logits(theta - step)) / (2 * h)
    return J


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_gauss_newton_matches_its_definition(activation, n_classes):
    # Σ_i w_i J_iᵀ (diag p_i − p_i p_iᵀ) J_i with J_i by finite differences.
    X, y = _tiny_problem(n_classes, n_samples=12)
    ref, maths, theta = _random_network(X, y, activation)
    active = np.ones(n_classes, dtype=bool)
    J = _logit_jacobian(ref, maths, theta, X)
    p = maths.forward(X, theta)[-1]
    if n_classes == 2:
        H = (p * (1 - p))[:, :, None]
    else:
        H = np.stack([np.diag(pi) - np.outer(pi, pi) for pi in p])
    w = check_random_state(2).uniform(0.5, 2.0, size=len(y))
    expected = np.einsum("i,iap,iab,ibq->pq", w, J, H, J)

    assert maths.factor_rank("gauss_newton") == maths.n_outputs
    U = maths.factor_rows(X, y, theta, active, "gauss_newton")
    assert U.shape == (len(y), maths.n_outputs, maths.n_params)
    got = np.einsum("i,iqp,iqr->pr", w, U, U)
    assert_allclose(got, expected, rtol=1e-6, atol=1e-8)
    bounds = [(0, 9), (9, 20), (20, maths.n_params)]
    blocks = maths.curvature_blocks(X, y, w, theta, active, "gauss_newton", bounds)
    for block, (s, e) in zip(blocks, bounds):
        assert_allclose(block, expected[s:e, s:e], rtol=1e-6, atol=1e-8)
    # Quadratic form and losses without forming anything.
    d = check_random_state(3).normal(size=maths.n_params)
    assert_allclose(
        maths.curvature_quadratic(X, y, w, theta, d, "gauss_newton"),
        d @ expected @ d,
        rtol=1e-6,
    )
    assert_allclose(
        maths.curvature_product(X, y, w, theta, d, "gauss_newton"),
        expected @ d,
        rtol=1e-6,
        atol=1e-8,
    )
    assert_allclose(maths.losses(X, y, theta), _log_losses(ref, maths, theta, X, y))


def test_gauss_newton_is_the_hessian_of_a_network_without_hidden_layers():
    # No hidden layer: the logits are linear in θ, so the GGN is the exact Hessian.
    X, y = _tiny_problem(3, n_samples=20)
    maths = MLPMaths([X.shape[1], 3], "relu")
    theta = check_random_state(0).normal(size=maths.n_params)
    U = maths.factor_rows(X, y, theta, np.ones(3, dtype=bool), "gauss_newton")
    ggn = np.einsum("iqp,iqr->pr", U, U)

    def gradient(t):
        return maths.gradient_rows(X, y, t, np.ones(3, dtype=bool)).sum(axis=0)

    h = 1e-6
    hessian = np.column_stack(
        [
            (gradient(theta + h * e) - gradient(theta - h * e)) / (2 * h)
            for e in np.eye(maths.n_params)
        ]
    )
    assert_allclose(ggn, hessian, rtol=1e-5, atol=1e-7)


def test_auto_damping_and_update_equal_their_definition():
    X, y = _tiny_problem(3, n_samples=50)
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(4,),
        activation="tanh",
        solver="lbfgs",
        alpha=0.05,
        max_iter=300,
        random_state=0,
        block_size=None,
    ).fit(X, y)
    assert est.curvature == "gauss_newton" and est.damping == "auto"
    maths = est._erasure_maths()
    theta = est.curvature_point_.copy()
    active = np.ones(3, dtype=bool)
    U = maths.factor_rows(X, y, theta, active, "gauss_newton").reshape(
        -1, maths.n_params
    )
    ggn = U.T @ U
    # λ = alpha + κ · mean diag, on every coordinate (plus the √eps floor).
    scale = np.diag(ggn).mean()
    lam = est.alpha + 1.0 * scale
    assert_allclose(est.damping_diagonal_, lam + np.sqrt(np.finfo(float).eps) * scale)
    M = np.linalg.inv(est.curvature_inverse_.to_dense())
    null = maths.null_directions()
    expected = ggn + np.diag(est.damping_diagonal_) + scale * null @ null.T
    assert_allclose(M, expected, rtol=1e-7, atol=1e-9)
    S = np.arange(6)
    U_S = maths.factor_rows(X[S], y[S], theta, active, "gauss_newton")
    U_S = U_S.reshape(-1, maths.n_params)
    G = maths.gradient_rows(X[S], y[S], theta, active)
    M_out = M - U_S.T @ U_S
    expected_theta = theta - np.linalg.solve(
        M_out, est.residual_gradient_ - G.sum(axis=0)
    )
    est.partial_forget(X[S], y[S])
    assert_allclose(est._get_flat_params(), expected_theta, rtol=1e-6, atol=1e-10)
    assert_allclose(
        np.linalg.inv(est.curvature_inverse_.to_dense()), M_out, rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize("curvature", ["gauss_newton", "fisher"])
def test_sequential_requests_equal_one_request(curvature):
    # linearization="fit": every request solves the same quadratic model, so two
    # requests land where one request of all their rows does.
    X, y = make_classification(
        n_samples=80,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=3,
        n_clusters_per_class=1,
        flip_y=0.2,
        random_state=0,
    )
    est = ErasableMLPClassifier(
        hidden_layer_sizes=(5,),
        solver="lbfgs",
        alpha=1.0,
        max_iter=300,
        random_state=0,
        curvature=curvature,
        block_size=None,
    ).fit(X, y)
    one = pickle.loads(pickle.dumps(est)).partial_forget(X[:9], y[:9])
    est.partial_forget(X[:5], y[:5]).partial_forget(X[5:9], y[5:9])
    assert_allclose(est._get_flat_params(), one._get_flat_params(), atol=1e-10)
    assert not np.allclose(est._get_flat_params(), est.curvature_point_)
    # "current" re-linearises at the current parameters: a different path.
    est.set_params(linearization="current")
    again = pickle.loads(pickle.dumps(one)).set_params(linearization="current")
    again.partial_forget(X[9:12], y[9:12])


def test_line_search_shortens_the_step_only():
    X, y = _tiny_problem(3, n_samples=60)
    params = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=200, random_state=0)
    fixed = ErasableMLPClassifier(**params, damping=1e-3).fit(X, y)
    searched = pickle.loads(pickle.dumps(fixed)).set_params(step_length="line_search")
    theta = fixed._get_flat_params()
    S = y == 1
    full = fixed.partial_forget(X[S][:8], y[S][:8])._get_flat_params() - theta
    short = searched.partial_forget(X[S][:8], y[S][:8])._get_flat_params() - theta
    t = (short @ full) / (full @ full)
    assert 0 < t <= 1
    assert_allclose(short, t * full, atol=1e-8 * np.abs(full).max())


def test_mini_batch_is_for_the_fisher_only():
    X, y = _tiny_problem(3, n_samples=40)
    with pytest.raises(ValueError, match="Fisher only"):
        ErasableMLPClassifier(
            hidden_layer_sizes=(3,), max_iter=20, fisher_batch_size=5
        ).fit(X, y)


def test_defaults_keep_the_model_through_sequential_requests():
    # Issue 9: a drop-in user, 20 requests of 1 % of the digits, defaults only.
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    est = ErasableMLPClassifier(hidden_layer_sizes=(16,), random_state=0).fit(X, y)
    before = est.score(X, y)
    order = check_random_state(0).permutation(len(y))
    k = len(y) // 100
    for r in range(20):
        rows = order[r * k : (r + 1) * k]
        est.partial_forget(X[rows], y[rows])
    kept = order[20 * k :]
    assert est.score(X[kept], y[kept]) > before - 0.03


def test_second_refit_gives_the_noise_floor():
    from sklearn.base import clone

    from sklearn_ssse.metrics import erasure_report, normalized_confusion_distance
    from sklearn_ssse.model_selection import forget_scale_curve

    X, y = _tiny_problem(3, n_samples=90)
    model = ErasableMLPClassifier(
        hidden_layer_sizes=(5,), solver="lbfgs", max_iter=200, random_state=0
    )
    original = model.fit(X, y)
    S = np.arange(30)
    keep = np.arange(30, 90)
    refit = clone(model).fit(X[keep], y[keep])
    refit_2 = clone(model).set_params(random_state=1).fit(X[keep], y[keep])
    updated = pickle.loads(pickle.dumps(original)).partial_forget(X[S], y[S])
    report = erasure_report(
        updated, X[S], y[S], original=original, refit=refit, second_refit=refit_2
    )
    assert list(report) == ["original", "updated", "refit", "refit_2"]
    expected = normalized_confusion_distance(
        y[S],
        refit_2.predict(X[S]),
        y_pred_original=original.predict(X[S]),
        y_pred_refit=refit.predict(X[S]),
        labels=original.classes_,
        zero_division=np.nan,
    )
    floor = report.noise_floor["normalized_confusion_distance"]
    assert floor == expected or (np.isnan(floor) and np.isnan(expected))
    assert "refit_2" in str(report)
    assert (
        erasure_report(updated, X[S], y[S], original=original, refit=refit).noise_floor
        is None
    )

    curve = forget_scale_curve(
        original,
        X[S],
        y[S],
        refit_estimator=refit,
        second_refit=refit_2,
        forget_scales=[0.5, 1.0],
        scoring="neg_normalized_confusion_distance",
        zero_division=0.0,
    )
    floor = curve.noise_floor["neg_normalized_confusion_distance"]
    assert_allclose(floor, -np.nan_to_num(expected, nan=0.0))
    assert (
        forget_scale_curve(
            original,
            X[S],
            y[S],
            refit_estimator=refit,
            forget_scales=[1.0],
            scoring="neg_normalized_confusion_distance",
            zero_division=0.0,
        ).noise_floor
        is None
    )


@pytest.mark.parametrize("block_size", [17, 1, None])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_gauss_newton_blocks_equal_the_factor_rows_gram(block_size, n_classes):
    # Blocks are made one block's columns at a time (block_size=1: by layer).
    rng = np.random.default_rng(0)
    X = rng.random((60, 13))
    y = rng.integers(0, n_classes, 60)
    model = ErasableMLPClassifier(
        hidden_layer_sizes=(7, 5), max_iter=30, random_state=0, block_size=block_size
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    maths, theta = model._erasure_maths(), model._get_flat_params()
    active = np.ones(n_classes, dtype=bool)
    yi = np.searchsorted(model.classes_, y)
    w = rng.random(60)
    bounds = model.erasure_state_.curvature.bounds
    blocks = maths.curvature_blocks(X, yi, w, theta, active, "gauss_newton", bounds)
    U = maths.factor_rows(X, yi, theta, active, "gauss_newton")
    U = (U * np.sqrt(w)[:, None, None]).reshape(-1, maths.n_params)
    for block, (s, e) in zip(blocks, bounds):
        assert_allclose(block, U[:, s:e].T @ U[:, s:e], rtol=1e-10, atol=1e-12)
