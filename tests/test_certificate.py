"""The certificate's bounds hold, and the audit record exports cleanly."""

import copy
import json
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import expit, softmax
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.certificate import erasure_audit, verify_erasure
from sklearn_ssse.exceptions import RefitRecommendedError, RefitRecommendedWarning
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier


def _data(name, n=None):
    loader = {
        "breast_cancer": load_breast_cancer,
        "wine": load_wine,
        "iris": load_iris,
        "digits": load_digits,
    }[name]
    X, y = loader(return_X_y=True)
    if name == "digits":  # a small three-class subset
        keep = np.flatnonzero(y < 3)[:240]
        X, y = X[keep], y[keep]
    _, first = np.unique(X, axis=0, return_index=True)  # iris repeats rows
    X, y = X[np.sort(first)], y[np.sort(first)]
    X = StandardScaler().fit_transform(X)
    X = X[:, np.std(X, axis=0) > 0]
    if n is not None:
        X, y = X[:n], y[:n]
    return X, y


def _true_gradient(model, X, y, sample_weight=None):
    """∇J_rem at the model's parameters, written out independently."""
    w = np.ones(len(y)) if sample_weight is None else sample_weight
    unpenalized = model.C == np.inf
    C = 1.0 if unpenalized else model.C
    Xt = np.hstack([X, np.ones((len(X), 1))]) if model.fit_intercept else X
    theta = (
        np.hstack([model.coef_, model.intercept_[:, None]])
        if model.fit_intercept
        else model.coef_.copy()
    )
    if theta.shape[0] == 1:
        r = expit(Xt @ theta[0]) - (y == model.classes_[1])
        grad = C * (r * w) @ Xt
        grad = grad[None, :]
    else:
        P = softmax(Xt @ theta.T, axis=1)
        P[np.arange(len(y)), np.searchsorted(model.classes_, y)] -= 1
        grad = C * (P * w[:, None]).T @ Xt
    if not unpenalized:
        penalty = theta.copy()
        if model.fit_intercept:
            penalty[:, -1] = 0
        grad = grad + penalty
    return np.linalg.norm(grad)


def _requests(n, size, count, seed=0):
    order = np.random.default_rng(seed).permutation(n)
    return [order[i * size : (i + 1) * size] for i in range(count)]


CONFIGS = [
    {},
    {"curvature": "fisher"},
    {"leave_out": False},
    {"forget_scale": 0.5},
    {"fit_intercept": False},
    {"block_size": "class"},
    {"C": 10.0},
]


CASES = [(name, params) for name in ("breast_cancer", "wine") for params in CONFIGS]
CASES += [(name, params) for name in ("iris", "digits") for params in CONFIGS[:2]]


@pytest.mark.parametrize(
    "name, params", CASES, ids=[f"{n}-{p or 'default'}" for n, p in CASES]
)
def test_bound_never_below_true_residual(name, params):
    X, y = _data(name)
    model = ErasableLogisticRegression(max_iter=5000, tol=1e-8, **params).fit(X, y)
    alive = np.ones(len(y), dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefitRecommendedWarning)
        for rows in _requests(len(y), max(2, len(y) // 50), 4):
            model.partial_forget(X[rows], y[rows])
            alive[rows] = False
            certificate = model.request_records_[-1].certificate
            true = _true_gradient(model, X[alive], y[alive])
            assert certificate["cumulative_gradient_bound"] >= true
            check = verify_erasure(model, X[alive], y[alive])
            assert check.gradient_norm == pytest.approx(true, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("curvature", ["hessian", "fisher"])
@pytest.mark.parametrize("name", ["wine", "iris"])
def test_bound_holds_over_fifty_sequential_requests(name, curvature):
    X, y = _data(name)
    model = ErasableLogisticRegression(curvature=curvature, max_iter=5000, tol=1e-8)
    model.set_params(certificate_budget=None).fit(X, y)
    alive = np.ones(len(y), dtype=bool)
    for rows in _requests(len(y), 1, 50, seed=1):
        model.partial_forget(X[rows], y[rows])
        alive[rows] = False
        bound = model.request_records_[-1].certificate["cumulative_gradient_bound"]
        assert bound >= _true_gradient(model, X[alive], y[alive])
    assert len(model.request_records_) == 50


def test_sample_weights_and_float32():
    X, y = _data("breast_cancer", n=200)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    for dtype in (np.float64, np.float32):
        Xd = X.astype(dtype)
        model = ErasableLogisticRegression(max_iter=5000, tol=1e-8)
        model.fit(Xd, y, sample_weight=weights)
        alive = np.ones(len(y), dtype=bool)
        for rows in _requests(len(y), 5, 3):
            model.partial_forget(Xd[rows], y[rows], sample_weight=weights[rows])
            alive[rows] = False
            bound = model.request_records_[-1].certificate["cumulative_gradient_bound"]
            true = _true_gradient(model, X[alive], y[alive], weights[alive])
            tolerance = 1e-3 if dtype == np.float32 else 0  # float32 rounding
            assert bound >= true - tolerance


@pytest.mark.parametrize("name", ["breast_cancer", "iris"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_distance_and_probability_bounds_hold(name, fit_intercept):
    X, y = _data(name)
    params = {"max_iter": 10000, "tol": 1e-10, "fit_intercept": fit_intercept}
    model = ErasableLogisticRegression(**params).fit(X, y)
    rows = _requests(len(y), len(y) // 20, 1)[0]
    alive = np.ones(len(y), dtype=bool)
    alive[rows] = False
    model.partial_forget(X[rows], y[rows])
    refit = clone(model).fit(X[alive], y[alive])
    theta = model._get_flat_params()
    distance = np.linalg.norm(theta - refit._get_flat_params())
    check = verify_erasure(model, X[alive], y[alive], X_query=X)
    assert check.distance_bound is not None
    assert check.distance_bound >= distance - 1e-6
    change = np.abs(model.predict_proba(X) - refit.predict_proba(X)).max()
    assert check.max_proba_change >= change - 1e-6
    assert check.max_proba_change <= 1.0
    if not fit_intercept:  # μ = 1 on every coordinate: within a small factor
        assert check.distance_bound <= 50 * distance + 1e-6
    certificate = model.request_records_[-1].certificate
    if not fit_intercept:  # the penalty makes the data-free distance rigorous
        assert certificate["distance_bound"] >= distance - 1e-6
    else:
        assert certificate["distance_bound"] is None
    json.loads(check.to_json())


def test_unpenalized_model_has_no_distance_certificate():
    X, y = _data("wine")
    model = ErasableLogisticRegression(C=np.inf, max_iter=5000).fit(X, y)
    model.set_params(certificate_budget=None).partial_forget(X[:3], y[:3])
    assert model.request_records_[-1].certificate["distance_bound"] is None
    check = verify_erasure(model, X[3:], y[3:], X_query=X[:5])
    assert check.distance_bound is None and check.max_proba_change is None
    json.loads(check.to_json())


def test_audit_record_exports_as_json_and_table():
    X, y = _data("iris")
    model = ErasableLogisticRegression(max_iter=1000).fit(X, y)
    assert erasure_audit(model) == []
    model.partial_forget(X[:2], y[:2]).partial_forget(X[60:63], y[60:63])
    log = erasure_audit(model)
    assert [row["index"] for row in log] == [1, 2]
    assert json.loads(log[1]["rows_per_class"]) == {}  # no per-class counts
    for row in log:
        assert row["curvature"] == "hessian" and row["leave_out"] is True
        assert row["library_version"] and row["time"].endswith("+00:00")
        assert row["certificate_cumulative_gradient_bound"] > 0
    text = log.to_json()
    assert json.loads(text) == json.loads(json.dumps(list(log)))
    for record in model.request_records_:
        json.dumps(record.to_dict(), allow_nan=False)
    pd = pytest.importorskip("pandas")
    frame = log.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2
    assert "certificate_distance_bound" in frame.columns


def test_audit_of_multi_output_model_is_per_output():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    Y = (X[:, :3] + rng.normal(size=(120, 3)) > 0).astype(int)
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    model.partial_forget(X[:4], Y[:4])
    log = erasure_audit(model)
    assert [row["output"] for row in log] == [0, 1, 2]
    json.loads(log.to_json())


def test_budget_warns_or_raises_leaving_the_model_unchanged():
    X, y = _data("breast_cancer")
    model = ErasableLogisticRegression(C=1e4, max_iter=5000).fit(X, y)
    rows = _requests(len(y), len(y) // 20, 1)[0]
    before = copy.deepcopy(model)
    with pytest.warns(RefitRecommendedWarning, match="Refit recommended"):
        copy.deepcopy(model).partial_forget(X[rows], y[rows])
    model.set_params(on_budget="raise")
    with pytest.raises(RefitRecommendedError, match="not applied"):
        model.partial_forget(X[rows], y[rows])
    np.testing.assert_array_equal(model.coef_, before.coef_)
    assert model.n_forgotten_ == 0
    model.set_params(certificate_budget=None).partial_forget(X[rows], y[rows])
    assert model.request_records_[-1].within_budget is None


def test_ordinary_requests_do_not_warn():
    for name in ("breast_cancer", "wine", "iris"):
        X, y = _data(name)
        model = ErasableLogisticRegression(max_iter=5000).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RefitRecommendedWarning)
            for rows in _requests(len(y), max(1, len(y) // 50), 5):
                model.partial_forget(X[rows], y[rows])
        assert model.request_records_[-1].within_budget is True


def test_whole_class_and_balanced_weights_are_not_certified():
    X, y = _data("iris")
    model = ErasableLogisticRegression(max_iter=1000).fit(X, y)
    gone = np.flatnonzero(y == 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RefitRecommendedWarning)
        model.partial_forget(X[gone], y[gone])
    assert model.request_records_[-1].within_budget is None
    certificate = model.request_records_[-1].certificate
    assert certificate["cumulative_gradient_bound"] is None
    assert "class" in certificate["note"]
    balanced = ErasableLogisticRegression(class_weight="balanced").fit(X, y)
    balanced.partial_forget(X[:2], y[:2])
    assert balanced.request_records_[-1].certificate is None
    assert balanced.request_records_[-1].within_budget is None


def test_erasure_report_carries_the_certificate_and_flags():
    from sklearn_ssse.metrics import erasure_report

    X, y = _data("breast_cancer", n=300)
    original = ErasableLogisticRegression(max_iter=5000).fit(X, y)
    rows = np.arange(12)
    refit = clone(original).fit(X[12:], y[12:])
    updated = copy.deepcopy(original).partial_forget(X[rows], y[rows])
    report = erasure_report(original, updated, refit, X[rows], y[rows])
    assert report.certificate["cumulative_gradient_bound"] > 0
    assert len(report.records) == 1 and not report.flags
    assert "certified" in str(report)
    data = json.loads(report.to_json())  # NaN columns (no test rows) are null
    assert data["models"]["updated"]["membership_auc"] is None
    # Overshooting 60×: further from the refit than the original was.
    far = copy.deepcopy(original).set_params(forget_scale=60)
    far.partial_forget(X[rows], y[rows])
    report = erasure_report(original, far, refit, X[rows], y[rows])
    assert any("further from the refit" in flag for flag in report.flags)
    assert "WARNING" in str(report)


# -- the "cg" structures: the exact M applied by CG; the certificate's Gram kept by
# the structure ("cg": the fit's, over its pattern; "cg-rows": its rows) or as its
# diagonal ("cg-class") --
CG_CASES = [
    ("breast_cancer", "cg", {}),
    ("breast_cancer", "cg-rows", {}),
    ("breast_cancer", "cg", {"leave_out": False}),
    ("breast_cancer", "cg", {"curvature": "fisher"}),
    ("wine", "cg", {}),
    ("wine", "cg-class", {}),
    ("wine", "cg-rows", {"forget_scale": 0.5}),
]


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    "name, structure, params", CG_CASES, ids=[f"{n}-{s}-{p}" for n, s, p in CG_CASES]
)
def test_cg_structures_carry_a_certificate_that_holds(name, structure, params, sparse):
    import scipy.sparse as sp

    X, y = _data(name)
    Xf = sp.csr_matrix(X) if sparse else X
    model = ErasableLogisticRegression(
        max_iter=5000, tol=1e-8, curvature_structure=structure, **params
    ).fit(Xf, y)
    state = model.erasure_state_.certificate_state
    assert state is not None and state.gram is None  # no dense Gram
    assert state.exact_hessian == (
        structure != "cg-class" and params.get("curvature", "hessian") == "hessian"
    )
    alive = np.ones(len(y), dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefitRecommendedWarning)
        for rows in _requests(len(y), max(2, len(y) // 50), 4):
            model.partial_forget(Xf[rows], y[rows])
            alive[rows] = False
            certificate = model.request_records_[-1].certificate
            true = _true_gradient(model, X[alive], y[alive])
            assert certificate["cumulative_gradient_bound"] >= true
    # Finite, and within the default budget.
    assert np.isfinite(certificate["cumulative_gradient_bound"])
    assert model.request_records_[-1].within_budget


def test_cg_certificate_counts_the_solve_residual():
    """A loose CG tolerance raises the step term by about ε‖ρ‖."""
    import scipy.sparse as sp

    X, y = _data("breast_cancer")
    terms = {}
    for rtol in (1e-1, 1e-8):
        model = ErasableLogisticRegression(max_iter=5000, tol=1e-8)
        # Sparse X: a Jacobi preconditioner, so CG takes several iterations.
        model.set_params(curvature_structure="cg").fit(sp.csr_matrix(X), y)
        model.erasure_state_.curvature.rtol = rtol
        model.partial_forget(sp.csr_matrix(X[:5]), y[:5])
        certificate = model.request_records_[-1].certificate
        terms[rtol] = certificate["step_term"]
        alive = np.arange(5, len(y))
        assert certificate["cumulative_gradient_bound"] >= _true_gradient(
            model, X[alive], y[alive]
        )
    assert terms[1e-1] > 10 * terms[1e-8]


@pytest.mark.parametrize("d", [50, 700])
def test_top_eigenvalue_bound_is_an_upper_bound(d):
    from sklearn_ssse.certificate import top_eigenvalue_bound

    rng = np.random.default_rng(d)
    X = rng.standard_normal((2 * d, d))
    X[:, 0] *= 30.0  # one dominant direction
    G = X.T @ X
    exact = np.linalg.eigvalsh(G)[-1]
    bound = top_eigenvalue_bound(G.copy())
    assert exact <= bound <= exact * (1 + 1e-3)
    # A cluster of near-equal top eigenvalues (Lanczos converges slowly).
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = np.r_[np.full(5, 100.0) + np.arange(5) * 1e-7, rng.uniform(0, 1, d - 5)]
    G = (Q * spectrum) @ Q.T
    G = (G + G.T) / 2
    assert top_eigenvalue_bound(G) >= np.linalg.eigvalsh(G)[-1]


@pytest.mark.parametrize("sparse", [False, True])
def test_cg_rows_certificate_uses_the_remaining_rows_gram(sparse):
    """ "cg-rows" keeps the rows: its Taylor term uses their exact Gram, so its
    bound holds and is no looser than "cg"'s (the same step solved tightly; the
    fit's Gram less the request's rows), and the Gram it uses is that of the
    rows left after each request."""
    import scipy.sparse as sp

    X, y = _data("breast_cancer")
    Xf = sp.csr_matrix(X) if sparse else X
    bounds, alive = {}, np.ones(len(y), dtype=bool)
    models = {
        s: ErasableLogisticRegression(
            max_iter=5000, tol=1e-8, curvature_structure=s
        ).fit(Xf, y)
        for s in ("cg", "cg-rows")
    }
    for model in models.values():  # the same step from both
        model.erasure_state_.curvature.rtol = 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefitRecommendedWarning)
        for rows in _requests(len(y), max(2, len(y) // 50), 4):
            alive[rows] = False
            for structure, model in models.items():
                model.partial_forget(Xf[rows], y[rows])
                bounds[structure] = model.request_records_[-1].certificate[
                    "cumulative_gradient_bound"
                ]
            true = _true_gradient(models["cg-rows"], X[alive], y[alive])
            assert true <= bounds["cg-rows"] <= bounds["cg"] * (1 + 1e-6)
    curvature = models["cg-rows"].erasure_state_.curvature
    A = np.random.default_rng(0).standard_normal((1, X.shape[1] + 1))
    Xt = np.hstack([X[alive], np.ones((alive.sum(), 1))])
    C = models["cg-rows"].C
    expected = np.sqrt(C * np.sum((Xt @ A.T) ** 2))
    assert curvature.gram_quadratics(A)[0] == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("sparse", [False, True])
def test_cg_certificate_uses_the_fit_gram_less_the_request(sparse):
    """ "cg" keeps the certificate's Gram over its pattern: on the first request
    its bound is the one of "cg-rows" (the fit's Gram less the request's rows
    is the remaining rows' Gram), far below what the Gram's diagonal gave, and
    it still holds over sequential requests."""
    import scipy.sparse as sp

    X, y = _data("breast_cancer")
    Xf = sp.csr_matrix(X) if sparse else X
    models = {
        s: ErasableLogisticRegression(
            max_iter=5000, tol=1e-8, curvature_structure=s
        ).fit(Xf, y)
        for s in ("cg", "cg-rows")
    }
    diagonal_only = ErasableLogisticRegression(
        max_iter=5000, tol=1e-8, curvature_structure="cg"
    ).fit(Xf, y)
    diagonal_only.erasure_state_.curvature.gram_values = None  # as before
    for model in [*models.values(), diagonal_only]:  # the same step from all
        model.erasure_state_.curvature.rtol = 1e-12
    alive = np.ones(len(y), dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefitRecommendedWarning)
        for i, rows in enumerate(_requests(len(y), max(2, len(y) // 50), 4)):
            alive[rows] = False
            bound = {}
            for name, model in [*models.items(), ("diagonal", diagonal_only)]:
                model.partial_forget(Xf[rows], y[rows])
                bound[name] = model.request_records_[-1].certificate[
                    "cumulative_gradient_bound"
                ]
            assert bound["cg"] >= _true_gradient(models["cg"], X[alive], y[alive])
            assert bound["cg-rows"] <= bound["cg"] * (1 + 1e-6)
            if i == 0:  # the same Gram on the first request
                assert bound["cg"] == pytest.approx(bound["cg-rows"], rel=1e-4)
            assert bound["cg"] < bound["diagonal"]


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_outputs, couple", [(1, True), (3, True), (3, False)])
def test_cg_gram_values_and_quadratics_match_their_definition(
    sparse, n_outputs, couple
):
    import scipy.sparse as sp

    from sklearn_ssse._curvature_cg import ConjugateGradientCurvature

    rng = np.random.default_rng(n_outputs)
    X = rng.random((40, 12)) * (rng.random((40, 12)) < 0.3)
    X[:, 0] = 1.0  # an intercept-like column: every row shares it
    V = rng.random((40, n_outputs, n_outputs))
    V = V + V.transpose(0, 2, 1)
    g = rng.random(40) + 0.1
    Xt = sp.csr_matrix(X) if sparse else X
    width = X.shape[1]
    curvature = ConjugateGradientCurvature.from_rows(
        Xt,
        V,
        lambda d: (np.ones(n_outputs * width), 1.0),
        np.zeros((n_outputs * width, 0)),
        couple_outputs=couple,
        gram_weights=g,
    )
    if not couple:  # "cg-class": the step term is not exact, no Gram kept
        assert curvature.gram_values is None
        assert curvature.gram_quadratics(np.ones((n_outputs, width))) is None
        return
    G = (X.T * g) @ X
    if sparse:
        indptr, indices = curvature.pattern
        stored = sp.csr_matrix(
            (curvature.gram_values, indices, indptr), shape=G.shape
        ).toarray()
        assert_allclose(stored, np.triu(G), rtol=1e-12, atol=1e-12)
    else:
        assert_allclose(curvature.gram_values, G, rtol=1e-12)
    A, B = rng.standard_normal((2, n_outputs, width))
    removed = np.sqrt(g[:3])[:, None] * X[:3]
    G_left = G - removed.T @ removed
    expected = [np.sqrt(np.trace(M @ G_left @ M.T)) for M in (A, B)]
    removed = sp.csr_matrix(removed) if sparse else removed
    assert_allclose(curvature.gram_quadratics(A, B, removed=removed), expected)
    # In memory of its own (it does not hold the fit's pair values alive), and
    # counted; downdated with the curvature (issue 22: a Gram that still counts
    # forgotten rows gives them back by difference with the downdated diagonal).
    assert not np.shares_memory(curvature.gram_values, curvature.values)
    assert curvature.nbytes >= curvature.values.nbytes + curvature.gram_values.nbytes
    later = curvature.downdated(rows=(Xt[3:5], V[3:5]), gram_weights=g[3:5])
    rest = np.r_[0:3, 5:40]
    G_rest = (X[rest].T * g[rest]) @ X[rest]
    expected = [np.sqrt(np.trace(M @ G_rest @ M.T)) for M in (A, B)]
    assert_allclose(later.gram_quadratics(A, B), expected, rtol=1e-10)
    # without the weights the Gram cannot be downdated: it is dropped, not kept
    assert curvature.downdated(rows=(Xt[3:5], V[3:5])).gram_values is None


def test_cg_pickled_without_the_gram_still_certifies():
    """A "cg" model pickled before the Gram was kept loads, takes requests, and
    falls back on the Gram's diagonal."""
    import pickle

    import scipy.sparse as sp

    X, y = _data("breast_cancer")
    model = ErasableLogisticRegression(max_iter=5000, curvature_structure="cg")
    model.fit(sp.csr_matrix(X), y)
    del model.erasure_state_.curvature.__dict__["gram_values"]
    loaded = pickle.loads(pickle.dumps(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RefitRecommendedWarning)
        loaded.partial_forget(sp.csr_matrix(X[:3]), y[:3])
    assert loaded.erasure_state_.curvature.gram_quadratics(np.ones((1, 31))) is None
    certificate = loaded.request_records_[-1].certificate
    assert certificate["cumulative_gradient_bound"] >= _true_gradient(
        loaded, X[3:], y[3:]
    )
