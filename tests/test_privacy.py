"""Erased means gone: what an attacker holding a saved model learns of an erased row.

Issue 22. Each attack runs on the pickled erasable model after a request, and on
the state of the same model fitted without the erased rows (the reference): the
erased model must give back no more than the reference does. ``docs/privacy.md``
lists every stored field and how a request purges it.
"""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasableMultiOutputClassifier,
    trusted_types,
)

KEY = b"k" * 32

CONFIGS = {
    "dense block": dict(),
    "small blocks": dict(block_size=3),
    "cg": dict(curvature_structure="cg"),
    "cg-class": dict(curvature_structure="cg-class"),
    "cg-rows": dict(curvature_structure="cg-rows"),
}


def _counts(n=150, d=8, n_classes=2, seed=0):
    """Non-negative count data, where ``C w x²`` of a row is the row itself."""
    rng = np.random.default_rng(seed)
    X = rng.poisson(2.0, size=(n, d)).astype(np.float64)
    y = (X[:, 0] + X[:, 1] + rng.normal(0, 1, n) > 4).astype(int)
    if n_classes == 3:
        y = y + (X[:, 2] > 2)
    return X, y


def _round_trip(model):
    return pickle.loads(pickle.dumps(model))


def _gram_difference(state):
    """The attack on the certificate: the stored Gram's diagonal minus the
    downdated diagonal (``C w x̃²`` of the erased rows when the Gram was the
    fit's)."""
    cert = state.certificate_state
    if cert is None:
        return None
    if cert.gram is not None:
        gram = cert.gram
        if cert.gram_removed is not None:
            gram = gram - cert.gram_removed.T @ cert.gram_removed
        return np.diag(gram) - cert.gram_diagonal
    values = getattr(state.curvature, "gram_values", None)
    if values is None:
        return np.zeros(1)  # nothing beside the diagonal to difference with
    if state.curvature.pattern is None:  # dense values
        return np.diag(values) - cert.gram_diagonal
    indptr, indices = state.curvature.pattern
    width = len(indptr) - 1
    upper = sp.csr_matrix((values, indices, indptr), shape=(width, width))
    return upper.diagonal() - cert.gram_diagonal


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("pickled", [False, True])
def test_the_certificate_gram_gives_no_erased_row_back(name, n_classes, pickled):
    X, y = _counts(n_classes=n_classes)
    model = ErasableLogisticRegression(**CONFIGS[name]).fit(X, y)
    for rows in ([5], [17, 40], [60]):  # three requests
        model.partial_forget(X[rows], y[rows])
    if pickled:
        model = _round_trip(model)
    difference = _gram_difference(model.erasure_state_)
    if difference is None:
        pytest.skip("no certificate kept")
    scale = np.abs(model.erasure_state_.certificate_state.gram_diagonal).max()
    # The Gram is the remaining rows' own: nothing to difference.
    np.testing.assert_allclose(difference, 0.0, atol=1e-9 * scale)


def test_multioutput_certificate_gram_gives_no_erased_row_back():
    X, y = _counts()
    Y = np.column_stack([y, 1 - y, (X[:, 3] > 2).astype(int)])
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y)
    model.partial_forget(X[:1], Y[:1]).partial_forget(X[7:9], Y[7:9])
    for live in (model, _round_trip(model)):
        for est in live.estimators_:
            state = est.erasure_state_
            scale = np.abs(state.certificate_state.gram_diagonal).max()
            np.testing.assert_allclose(_gram_difference(state), 0.0, atol=1e-9 * scale)


def test_the_pickle_holds_the_remaining_gram_exactly():
    """Dense block: the pickled Gram is the remaining rows' Gram (folded)."""
    X, y = _counts()
    model = ErasableLogisticRegression().fit(X, y).partial_forget(X[:3], y[:3])
    cert = _round_trip(model).erasure_state_.certificate_state
    assert cert.gram_removed is None
    C = model.C
    rest = np.column_stack([X[3:], np.ones(len(X) - 3)])
    np.testing.assert_allclose(cert.gram, C * rest.T @ rest, rtol=1e-10)


def test_cg_rows_keeps_no_erased_row_and_no_preconditioner_of_them():
    X, y = _counts(n=200, d=6, n_classes=3)
    model = ErasableLogisticRegression(curvature_structure="cg-rows").fit(X, y)
    model.partial_forget(X[:4], y[:4])
    curvature = _round_trip(model).erasure_state_.curvature
    rows = curvature.rows.toarray() if sp.issparse(curvature.rows) else curvature.rows
    assert rows.shape[0] == len(X) - 4
    # the preconditioner of the fit (every row's Gram) is not in the file
    assert curvature.blocks is None and curvature.kronecker is None
    model.set_erasure_key(KEY)  # the loaded model opens the same fit point
    loaded = _round_trip(model).set_erasure_key(KEY)
    before = model.coef_.copy()
    for m in (model, loaded):  # solved tightly: the preconditioner is then moot
        m.erasure_state_.curvature.rtol = 1e-9
    loaded.partial_forget(X[10:12], y[10:12])  # rebuilt from the rows held
    assert loaded.erasure_state_.curvature.blocks is not None
    model.partial_forget(X[10:12], y[10:12])
    step = np.linalg.norm(model.coef_ - before)
    assert np.linalg.norm(loaded.coef_ - model.coef_) <= 1e-5 * step


def test_records_hold_no_label_or_value_of_a_row():
    X, y = _counts()
    labels = np.where(y == 1, "churned", "stayed")
    model = ErasableLogisticRegression().fit(X, labels)
    model.partial_forget(X[:1], labels[:1], request_id="TICKET-17")
    record = model.request_records_[-1]
    text = json.dumps(record.to_dict())
    assert "churned" not in text and "stayed" not in text
    assert record.rows_per_class == {}
    assert record.request_id == "TICKET-17" and record.n_rows == 1
    # nothing of the size of a row or a parameter vector: scalars and the
    # certificate's scalar bounds only
    flat = dict(record.to_dict(), **(record.to_dict()["certificate"] or {}))
    for key, value in flat.items():
        assert not isinstance(value, list | tuple | np.ndarray), key


def test_request_id_is_applied_once():
    from sklearn_ssse import InvalidRequestError

    X, y = _counts()
    model = ErasableLogisticRegression().fit(X, y)
    model.partial_forget(X[:1], y[:1], request_id="A-1")
    before = model.coef_.copy()
    with pytest.raises(InvalidRequestError, match="already applied"):
        model.partial_forget(X[1:2], y[1:2], request_id="A-1")
    np.testing.assert_array_equal(model.coef_, before)
    with pytest.raises(InvalidRequestError, match="non-empty string"):
        model.partial_forget(X[1:2], y[1:2], request_id=17)


def test_lineage_links_each_state_to_its_parent():
    X, y = _counts()
    model = ErasableLogisticRegression().fit(X, y)
    first = model.erasure_state_
    assert first.parent_id is None and len(first.state_id) == 32
    model.partial_forget(X[:1], y[:1])
    second = model.erasure_state_
    assert second.parent_id == first.state_id != second.state_id
    assert model.request_records_[-1].state_id == second.state_id
    model.compact_erasure_state()  # the same state, another representation
    assert model.erasure_state_.state_id == second.state_id


# -- skops: the library's own list, and a tampered file -------------------------
skops_io = pytest.importorskip("skops.io")


def _models_for_skops():
    X, y = _counts(n=120, d=5, n_classes=3)
    for kwargs in CONFIGS.values():
        yield ErasableLogisticRegression(**kwargs).fit(X, y), X, y
    Y = np.column_stack([y > 0, y > 1]).astype(int)
    yield ErasableMultiOutputClassifier(ErasableLogisticRegression()).fit(X, Y), X, Y


def test_trusted_types_cover_every_model():
    for model, X, y in _models_for_skops():
        model.partial_forget(X[:2], y[:2])
        found = skops_io.get_untrusted_types(data=skops_io.dumps(model))
        assert set(found) <= set(trusted_types()), type(model)
        loaded = skops_io.loads(skops_io.dumps(model), trusted=trusted_types())
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_a_tampered_skops_file_is_refused():
    X, y = _counts()
    model = ErasableLogisticRegression().fit(X, y).partial_forget(X[:1], y[:1])
    data = skops_io.dumps(model)
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "schema.json":
                text = content.decode()
                assert "ErasureState" in text
                text = text.replace('"sklearn_ssse._state"', '"subprocess"')
                text = text.replace('"ErasureState"', '"Popen"')
                content = text.encode()
            target.writestr(item, content)
    tampered = out.getvalue()
    # The file's own list would trust it; the library's list does not.
    assert "subprocess.Popen" in skops_io.get_untrusted_types(data=tampered)
    with pytest.raises(Exception, match="Untrusted types"):
        skops_io.loads(tampered, trusted=trusted_types())


# -- the reference: the same attacks on a refit ---------------------------------
def test_gram_attack_on_a_refit_state_matches_the_erased_one():
    X, y = _counts()
    erased = ErasableLogisticRegression().fit(X, y).partial_forget(X[:1], y[:1])
    refit = clone(erased).fit(X[1:], y[1:])
    a = _gram_difference(_round_trip(erased).erasure_state_)
    b = _gram_difference(refit.erasure_state_)
    scale = np.abs(refit.erasure_state_.certificate_state.gram_diagonal).max()
    assert np.abs(a).max() <= np.abs(b).max() + 1e-9 * scale


# -- the linearisation point ------------------------------------------------------
def _point_attack(state, curvature_matvec):
    """``M (point − θ)``: the erased rows' summed gradient when the point is θ*."""
    if state.point is None:
        return None
    return curvature_matvec(np.asarray(state.point) - state.coefficients)


def _dense_M(state):
    inverse = state.curvature.to_dense()
    return np.linalg.inv(inverse)


@pytest.mark.parametrize("name", ["dense block", "cg", "cg-rows"])
def test_a_saved_model_holds_no_fit_point_to_solve_for(name):
    X, y = _counts()
    model = ErasableLogisticRegression(tol=1e-10, **CONFIGS[name]).fit(X, y)
    model.partial_forget(X[:1], y[:1])
    live = model.erasure_state_
    assert not np.array_equal(live.point, live.coefficients)  # in memory: θ*
    state = _round_trip(model).erasure_state_
    assert state.point is None and state.sealed_point is not None
    assert set(state.sealed_point) == {"nonce", "body", "tag", "dtype", "shape"}
    cert = state.certificate_state
    assert cert.gram_drift is None and cert.drift_at is None  # (θ − θ*) G: gone
    # the sealed bytes are not the point's bytes
    body = np.asarray(state.sealed_point["body"], dtype=np.uint8)
    assert body.tobytes() != np.ascontiguousarray(live.point).tobytes()


def test_the_key_opens_the_point_and_a_wrong_key_is_refused():
    X, y = _counts()
    model = ErasableLogisticRegression().fit(X, y).set_erasure_key(KEY)
    model.partial_forget(X[:2], y[:2])
    loaded = _round_trip(model)
    before = pickle.dumps(loaded)
    with pytest.raises(ValueError, match="does not open"):
        loaded.set_erasure_key(b"w" * 32)
    assert pickle.dumps(loaded) == before  # unchanged
    with pytest.raises(ValueError, match="16 to 64"):
        loaded.set_erasure_key(b"short")
    loaded.set_erasure_key(KEY)
    np.testing.assert_array_equal(
        loaded.erasure_state_.point, model.erasure_state_.point
    )
    for m in (model, loaded):
        m.partial_forget(X[5:7], y[5:7])
    np.testing.assert_array_equal(loaded.coef_, model.coef_)


def test_without_the_key_a_loaded_model_rebases_and_says_so():
    from sklearn_ssse.exceptions import SealedPointWarning

    X, y = _counts()
    model = ErasableLogisticRegression().fit(X, y).partial_forget(X[:2], y[:2])
    loaded = _round_trip(model)
    with pytest.warns(SealedPointWarning, match="set_erasure_key"):
        loaded.partial_forget(X[5:7], y[5:7])
    # re-based: linearised at the published parameters, nothing sealed any more
    state = loaded.erasure_state_
    assert state.sealed_point is None
    assert _round_trip(loaded).erasure_state_.point is None  # sealed again


def test_membership_from_the_pickle_is_no_better_than_from_a_refit():
    """The attacks of this module, as a membership score: erased rows against
    rows never seen, from the pickle alone; and the same on a refit's state."""
    X, y = _counts(n=200, d=6, seed=3)
    held_out = np.arange(180, 200)
    erased = np.arange(20)
    model = ErasableLogisticRegression(tol=1e-10).fit(X[:180], y[:180])
    for i in erased:  # one-row requests, as in the attack
        model.partial_forget(X[i : i + 1], y[i : i + 1])
    refit = ErasableLogisticRegression(tol=1e-10).fit(X[20:180], y[20:180])

    def scores(m):
        state = _round_trip(m).erasure_state_
        difference = _gram_difference(state)
        M = _dense_M(state)
        point = _point_attack(state, lambda v: M @ v)
        rows = np.column_stack([X, np.ones(len(X))])
        out = []
        for i in np.r_[erased, held_out]:
            s = float(np.abs(difference) @ rows[i] ** 2)
            if point is not None and np.linalg.norm(point) > 0:
                s += abs(point @ rows[i]) / (
                    np.linalg.norm(point) * np.linalg.norm(rows[i])
                )
            out.append(s)
        return np.array(out)

    truth = np.r_[np.ones(len(erased)), np.zeros(len(held_out))]
    auc_erased = roc_auc_score(truth, scores(model))
    auc_refit = roc_auc_score(truth, scores(refit))
    assert auc_erased <= auc_refit + 0.1
    assert abs(auc_erased - 0.5) <= 0.1  # nothing to tell them apart
