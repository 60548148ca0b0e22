"""No operation of the library modifies the arrays the user passes in.

A sparse matrix whose column indices are not sorted is valid scipy input (the
standard library's own TF-IDF gives one), and so is a ``float32`` matrix handed to a
model that converts it. scipy sorts indices *in place* in several operations
(``abs``, ``astype``, ``sum_duplicates``...): on a matrix that shares its index
array with the user's but not its values, that permutes the user's indices without
their values and silently corrupts the user's data. These tests pass such input to
every public operation and compare the arrays byte for byte afterwards.
"""

import copy
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn_ssse import (
    ErasableLogisticRegression,
    ErasableLogisticRegressionCV,
    ErasableMLPClassifier,
    ErasableMultiOutputClassifier,
    ErasureLedger,
)
from sklearn_ssse.certificate import verify_erasure


def _unsorted_sparse(dtype, n=60, d=40, seed=0):
    """CSR with every row's indices in descending order (not canonical)."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=0.2, format="csr", random_state=seed, dtype=dtype)
    X.data = rng.uniform(0.1, 1.0, X.nnz).astype(dtype)
    indices, data = X.indices.copy(), X.data.copy()
    for start, stop in zip(X.indptr[:-1], X.indptr[1:]):
        indices[start:stop] = indices[start:stop][::-1]
        data[start:stop] = data[start:stop][::-1]
    out = sp.csr_matrix((data, indices, X.indptr.copy()), shape=X.shape)
    assert not out.has_sorted_indices
    return out


def _snapshot(X):
    return [a.copy() for a in _arrays(X)]


def _assert_unchanged(X, snapshot, what):
    for name, before, now in zip(("data", "indices", "indptr"), snapshot, _arrays(X)):
        assert np.array_equal(before, now), f"{what} changed X.{name}"


def _arrays(X):
    return (X.data, X.indices, X.indptr) if sp.issparse(X) else (X,)


ESTIMATORS = {
    "auto": lambda: ErasableLogisticRegression(),
    "blocks": lambda: ErasableLogisticRegression(curvature_structure="blocks"),
    "cg": lambda: ErasableLogisticRegression(curvature_structure="cg"),
    "cg-class": lambda: ErasableLogisticRegression(curvature_structure="cg-class"),
    "cg-rows": lambda: ErasableLogisticRegression(curvature_structure="cg-rows"),
    "fisher": lambda: ErasableLogisticRegression(curvature="fisher"),
    "l1": lambda: ErasableLogisticRegression(penalty="l1", solver="saga", C=10.0),
    "noise": lambda: ErasableLogisticRegression(removal_noise=0.1, random_state=0),
    "cv": lambda: ErasableLogisticRegressionCV(Cs=2, cv=2),
    "mlp": lambda: ErasableMLPClassifier(
        hidden_layer_sizes=(4,), max_iter=30, random_state=0
    ),
    # without an intercept the augmented rows are the user's own arrays
    "cg-rows, no intercept": lambda: ErasableLogisticRegression(
        curvature_structure="cg-rows", fit_intercept=False
    ),
    "cg, no intercept": lambda: ErasableLogisticRegression(
        curvature_structure="cg", fit_intercept=False
    ),
    "blocks, no intercept": lambda: ErasableLogisticRegression(fit_intercept=False),
}


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_fit_and_requests_leave_the_users_input_unchanged(
    name, n_classes, dtype, sparse
):
    X = _unsorted_sparse(dtype)
    request = _unsorted_sparse(dtype, seed=0)[:3]
    if not sparse:
        X, request = X.toarray(), request.toarray()
    y = np.arange(X.shape[0]) % n_classes
    before, before_request = _snapshot(X), _snapshot(request)
    model = ESTIMATORS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence, cost: not the subject here
        model.fit(X, y)
        _assert_unchanged(X, before, f"{name}.fit")
        model.predict_proba(X)
        model.partial_forget(request, y[:3])
        _assert_unchanged(request, before_request, f"{name}.partial_forget")
        _assert_unchanged(X, before, f"{name}.predict_proba")
        if name in ("auto", "blocks", "cg"):
            verify_erasure(model, X[3:], y[3:])
            _assert_unchanged(X, before, f"{name} verify_erasure")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_multioutput_and_ledger_leave_the_users_sparse_input_unchanged(dtype):
    X = _unsorted_sparse(dtype)
    Y = np.column_stack([np.arange(60) % 2, (np.arange(60) // 2) % 2])
    before = _snapshot(X)
    ledger = ErasureLedger(key=b"0" * 32)
    ledger.record_training(X, Y[:, 0])
    _assert_unchanged(X, before, "ErasureLedger.record_training")
    model = ErasableMultiOutputClassifier(ErasableLogisticRegression())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, Y)
        _assert_unchanged(X, before, "multi-output fit")
        request = X[:3]
        snapshot = _snapshot(request)
        model.partial_forget(request, Y[:3])
        _assert_unchanged(request, snapshot, "multi-output partial_forget")
    _assert_unchanged(X, before, "multi-output")


def _forms(X):
    """The same rows as dense, canonical CSR, unsorted CSR, CSR with a repeated
    entry, CSC and COO."""
    csr = sp.csr_matrix(X)
    unsorted = _unsorted_sparse_from(csr)
    coo = csr.tocoo()
    # split the first stored value of each row in two halves: a repeated entry
    first = csr.indptr[:-1][np.diff(csr.indptr) > 0]
    row = np.concatenate([coo.row, coo.row[first]])
    col = np.concatenate([coo.col, coo.col[first]])
    data = np.concatenate([coo.data, coo.data[first] / 2])
    data[first] /= 2
    order = np.argsort(row, kind="stable")
    repeated = sp.csr_matrix(
        (
            data[order],
            col[order],
            np.searchsorted(row[order], np.arange(X.shape[0] + 1)),
        ),
        shape=X.shape,
    )
    return {
        "dense": csr.toarray(),
        "csr": csr,
        "unsorted": unsorted,
        "repeated": repeated,
        "csc": csr.tocsc(),
        "coo": coo,
    }


def _unsorted_sparse_from(csr):
    indices, data = csr.indices.copy(), csr.data.copy()
    for start, stop in zip(csr.indptr[:-1], csr.indptr[1:]):
        indices[start:stop] = indices[start:stop][::-1]
        data[start:stop] = data[start:stop][::-1]
    return sp.csr_matrix((data, indices, csr.indptr.copy()), shape=csr.shape)


@pytest.mark.parametrize("structure", ["blocks", "cg", "cg-rows"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_request_does_the_same_whatever_the_rows_format(structure, dtype):
    """The rows of a request given dense, as CSR (sorted or not, with repeated
    entries), CSC or COO erase the same thing, from a model fitted on dense or
    sparse rows (the solver itself may differ between those two fits)."""
    X = _unsorted_sparse(dtype).toarray()
    y = np.arange(X.shape[0]) % 2
    fits = {"dense": X, "csr": sp.csr_matrix(X)}
    if structure == "blocks":
        del fits["csr"]
    rtol = 1e-4 if dtype == np.float32 else 1e-8
    for fit_name, Xfit in fits.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = ErasableLogisticRegression(curvature_structure=structure)
            fitted.fit(Xfit, y)
        results = {}
        for name, rows in _forms(X[:4]).items():
            model = copy.deepcopy(fitted).partial_forget(rows, y[:4])
            results[name] = np.append(model.coef_, model.intercept_)
        for name, value in results.items():
            np.testing.assert_allclose(
                value, results["dense"], rtol=rtol, atol=rtol, err_msg=(fit_name, name)
            )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_ledger_knows_a_row_whatever_its_format(dtype):
    X = _unsorted_sparse(dtype).toarray()
    y = np.arange(X.shape[0]) % 2
    ledger = ErasureLedger(key=b"1" * 32)
    ledger.record_training(X, y)
    expected = ledger.fingerprints(X[:4], y[:4])
    for name, rows in _forms(X[:4]).items():
        assert np.array_equal(ledger.fingerprints(rows, y[:4]), expected), name


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("structure", ["blocks", "cg", "cg-rows"])
def test_the_model_holds_no_reference_to_the_users_arrays(
    structure, fit_intercept, sparse
):
    """Changing X after fit changes nothing in the model (it keeps copies)."""
    X = _unsorted_sparse(np.float64)
    if not sparse:
        X = X.toarray()
    y = np.arange(X.shape[0]) % 2
    model = ErasableLogisticRegression(
        curvature_structure=structure, fit_intercept=fit_intercept
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    reference = copy.deepcopy(model)
    (X.data if sparse else X)[...] *= 3.0  # the user reuses the array
    request = _unsorted_sparse(np.float64)[:3]
    if not sparse:
        request = request.toarray()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_forget(request, y[:3])
        reference.partial_forget(request, y[:3])
    np.testing.assert_array_equal(model.coef_, reference.coef_)
