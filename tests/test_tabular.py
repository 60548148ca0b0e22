"""Tabular pipelines end to end (issue 24, parts 2 and 4): a DataFrame with numeric
and categorical columns, NaNs and a customer id, through a ColumnTransformer, and
the evidence functions on any composition."""

import copy
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    StandardScaler,
)

from sklearn_ssse import ErasableLogisticRegression, ErasableLogisticRegressionCV
from sklearn_ssse.certificate import erasure_audit, verify_erasure
from sklearn_ssse.compose import (
    CompositionError,
    ErasableOneHotEncoder,
    ErasableOrdinalEncoder,
    ErasableSimpleImputer,
    ImputedRowsChangedWarning,
    NotTrainingRowsError,
    UnsupportedStepError,
    forget,
)
from sklearn_ssse.metrics import erasure_report
from sklearn_ssse.serving import serving_model

QUIET = dict(scoring="neg_log_loss", use_legacy_attributes=False)


def churn_frame(n=240, seed=0):
    """A churn-like DataFrame: an id, numeric and categorical columns, NaNs, and a
    plan ("legacy") held by four customers only (rows 0-3)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "tenure": rng.gamma(2.0, 10.0, n),
            "charges": rng.normal(70.0, 20.0, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "region": rng.choice(["north", "south", "east", None], n),
        }
    )
    df.loc[df.index[:4], "plan"] = "legacy"
    df.loc[df.index[40:60], "tenure"] = np.nan  # missing, never among erased rows
    z = (
        (df["charges"] - 70) / 20
        - 0.03 * df["tenure"].fillna(20)
        + 0.8 * (df["plan"] == "pro")
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-z.to_numpy()))).astype(int)
    return df, y


@pytest.fixture(scope="module")
def churn():
    df, y = churn_frame()
    S = np.zeros(len(y), dtype=bool)
    S[:4] = True  # every "legacy" customer
    S[100:106] = True
    return df, y, S


def _clf(**kwargs):
    return ErasableLogisticRegression(tol=1e-10, max_iter=2000, **kwargs)


def churn_pipeline(**clf):
    prep = ColumnTransformer(
        [
            ("cat", ErasableOneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
            (
                "num",
                make_pipeline(ErasableSimpleImputer(), StandardScaler()),
                ["tenure", "charges"],
            ),
        ],
        remainder="drop",  # the customer id
    )
    return Pipeline([("prep", prep), ("clf", _clf(**clf))])


def _forget(pipe, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImputedRowsChangedWarning)
        return forget(pipe, X, y, **kwargs)


def _proba_gap(a, b, X):
    return np.abs(a.predict_proba(X) - b.predict_proba(X)).max()


# -- the tabular pipeline ----------------------------------------------------------
def test_column_transformer_pipeline_matches_refit(churn):
    df, y, S = churn
    pipe = churn_pipeline().fit(df, y)
    original = copy.deepcopy(pipe)
    # The imputed mean moves: remaining rows with a missing tenure read the new
    # one (the scaler after the imputer is corrected exactly; warned by name).
    with pytest.warns(ImputedRowsChangedWarning, match="simpleimputer"):
        forget(pipe, df[S], y[S])
    refit = churn_pipeline().fit(df[~S], y[~S])
    cat, cat_refit = (p[0].named_transformers_["cat"] for p in (pipe, refit))
    for mine, theirs in zip(cat.categories_, cat_refit.categories_):
        assert_array_equal(mine.astype(str), theirs.astype(str))
    assert "legacy" not in cat.categories_[0]
    assert pipe[0].output_indices_ == refit[0].output_indices_
    num, num_refit = (p[0].named_transformers_["num"] for p in (pipe, refit))
    assert_allclose(num[0].statistics_, num_refit[0].statistics_, rtol=1e-12)
    assert_allclose(num[1].mean_, num_refit[1].mean_, rtol=1e-10)
    assert_allclose(num[1].var_, num_refit[1].var_, rtol=1e-10)
    assert pipe[-1].coef_.shape == refit[-1].coef_.shape
    X_rest = df[~S]
    assert _proba_gap(pipe, refit, X_rest) < 0.1 * _proba_gap(original, refit, X_rest)
    assert _proba_gap(pipe, refit, X_rest) < 5e-3
    # The state stays consistent after the surgery: a second request works.
    more = np.zeros(len(y), dtype=bool)
    more[150:153] = True
    _forget(pipe, df[more], y[more])
    refit = churn_pipeline().fit(df[~(S | more)], y[~(S | more)])
    assert _proba_gap(pipe, refit, df[~(S | more)]) < 5e-3
    assert pipe[-1].n_forgotten_ == (S | more).sum()


def test_erased_only_category_absent_from_serving_model(churn):
    df, y, S = churn
    pipe = _forget(churn_pipeline().fit(df, y), df[S], y[S])
    plain = serving_model(pipe)
    encoder = plain[0].named_transformers_["cat"]
    assert type(encoder) is OneHotEncoder  # the counts stay behind
    assert "legacy" not in encoder.categories_[0]
    assert not hasattr(encoder, "category_counts_")
    assert not hasattr(plain[0].named_transformers_["num"][0], "n_observed_")
    assert_allclose(plain.predict_proba(df), pipe.predict_proba(df))
    assert "legacy" not in plain[0].get_feature_names_out().tolist()


def test_imputed_mean_change_is_warned_by_name(churn):
    df, y, S = churn
    rows = np.zeros(len(y), dtype=bool)
    rows[100:106] = True
    pipe = churn_pipeline().fit(df, y)
    with pytest.warns(ImputedRowsChangedWarning, match="simpleimputer"):
        forget(pipe, df[rows], y[rows])


@pytest.mark.parametrize("fixed", [False, True])
def test_scaler_after_one_hot_variance_becomes_exactly_zero(churn, fixed):
    """Every row of a category erased, then a scaler: as a refit, var_ 0, scale_ 1."""
    df, y, S = churn
    categories = [["basic", "legacy", "plus", "pro"]]
    encoder = (
        OneHotEncoder(categories=categories, sparse_output=False)
        if fixed
        else ErasableOneHotEncoder(sparse_output=False)
    )

    def make():
        prep = ColumnTransformer(
            [("plan", clone(encoder), ["plan"]), ("x", "passthrough", ["charges"])]
        )
        return Pipeline([("prep", prep), ("scale", StandardScaler()), ("clf", _clf())])

    pipe = forget(make().fit(df, y), df[S], y[S])
    refit = make().fit(df[~S], y[~S])
    assert_array_equal(pipe[1].var_ == 0, refit[1].var_ == 0)
    assert_allclose(pipe[1].var_, refit[1].var_, rtol=1e-10, atol=0)
    assert_allclose(pipe[1].scale_, refit[1].scale_, rtol=1e-10)
    if fixed:
        assert pipe[1].var_[1] == 0 and pipe[1].scale_[1] == 1
        # A new customer of the emptied category enters as in the refit.
        newcomer = df.iloc[:1]
        assert_allclose(
            pipe.predict_proba(newcomer), refit.predict_proba(newcomer), atol=5e-3
        )
    else:
        assert pipe[1].n_features_in_ == refit[1].n_features_in_ == 4
    assert _proba_gap(pipe, refit, df[~S]) < 5e-3


@pytest.mark.parametrize(
    "remainder", ["passthrough", "drop", StandardScaler(), MinMaxScaler()]
)
def test_remainder_and_index_selection(churn, remainder):
    df, y, S = churn
    X = df[["charges", "tenure", "plan"]].copy()
    X["tenure"] = X["tenure"].fillna(20.0)
    X["plan"] = X["plan"].map({"basic": 0.0, "plus": 1.0, "pro": 2.0, "legacy": 3.0})
    X = X.to_numpy()
    rows = np.zeros(len(y), dtype=bool)
    rows[[120, 130, 140]] = True  # none at the charges' extremes
    low, high = X[:, 1].min(), X[:, 1].max()
    rows &= (X[:, 1] > low) & (X[:, 1] < high)

    def make():
        prep = ColumnTransformer(
            [
                ("scaled", StandardScaler(), [0]),
                ("none", "drop", [2]),
            ],
            remainder=clone(remainder) if not isinstance(remainder, str) else remainder,
        )
        return make_pipeline(prep, _clf())

    pipe = forget(make().fit(X, y), X[rows], y[rows])
    refit = make().fit(X[~rows], y[~rows])
    assert_allclose(pipe.predict_proba(X), refit.predict_proba(X), atol=5e-3)
    assert_allclose(pipe[0].transform(X), refit[0].transform(X), rtol=1e-9, atol=1e-12)


def test_one_hot_straight_into_the_classifier_multiclass(churn):
    df, _, S = churn
    y = np.searchsorted(["east", "north", "south"], df["region"].fillna("east"))
    y = np.where(df["charges"] > 80, 2, y % 2)

    def make():
        prep = ColumnTransformer(
            [("plan", ErasableOneHotEncoder(), ["plan"])], remainder="drop"
        )
        return make_pipeline(prep, _clf())

    pipe = forget(make().fit(df, y), df[S], y[S])
    refit = make().fit(df[~S], y[~S])
    assert pipe[-1].coef_.shape == refit[-1].coef_.shape == (3, 3)
    assert_allclose(pipe.predict_proba(df[~S]), refit.predict_proba(df[~S]), atol=5e-3)


def test_ordinal_encoder(churn):
    df, y, _ = churn
    X = df[["plan"]].replace({"legacy": "zzz"})  # the emptied category sorts last

    def make(encoder):
        return make_pipeline(encoder, StandardScaler(), _clf())

    last = np.zeros(len(y), dtype=bool)
    last[:4] = True
    pipe = forget(make(ErasableOrdinalEncoder()).fit(X, y), X[last], y[last])
    refit = make(ErasableOrdinalEncoder()).fit(X[~last], y[~last])
    assert_array_equal(pipe[0].categories_[0], refit[0].categories_[0])
    assert_allclose(
        pipe.predict_proba(X[~last]), refit.predict_proba(X[~last]), atol=5e-3
    )
    # With a missing-value category after the emptied one (NaN sorts last).
    X2 = df[["region"]].copy()
    X2.loc[X2.index[:4], "region"] = "zzz"  # four customers, all erased
    encoder = ErasableOrdinalEncoder(encoded_missing_value=-1)
    pipe = forget(make(clone(encoder)).fit(X2, y), X2[last], y[last])
    refit = make(clone(encoder)).fit(X2[~last], y[~last])
    assert pipe[0]._missing_indices == refit[0]._missing_indices
    assert_array_equal(pipe[0].transform(X2[~last]), refit[0].transform(X2[~last]))
    # A middle category emptied: a refit renumbers the ones after it.
    middle = (X["plan"] == "plus").to_numpy()
    pipe = make(ErasableOrdinalEncoder()).fit(X, y)
    before = copy.deepcopy(pipe[-1].coef_)
    with pytest.raises(UnsupportedStepError, match="ErasableOrdinalEncoder"):
        forget(pipe, X[middle], y[middle])
    assert_array_equal(pipe[-1].coef_, before)  # unchanged
    with pytest.raises(UnsupportedStepError, match="ErasableOrdinalEncoder"):
        forget(make(OrdinalEncoder()).fit(X, y), X[last], y[last])
    with pytest.raises(NotTrainingRowsError, match="never saw"):
        forget(make(ErasableOrdinalEncoder()).fit(X[~last], y[~last]), X[last], y[last])


def test_plain_one_hot_encoder_refused_unless_categories_fixed(churn):
    df, y, S = churn
    pipe = make_pipeline(OneHotEncoder(), _clf()).fit(df[["plan"]], y)
    with pytest.raises(UnsupportedStepError, match="ErasableOneHotEncoder"):
        forget(pipe, df[["plan"]][S], y[S])
    pipe = make_pipeline(ErasableOneHotEncoder(min_frequency=5), _clf()).fit(
        df[["plan"]], y
    )
    with pytest.raises(UnsupportedStepError, match="infrequent"):
        forget(pipe, df[["plan"]][S], y[S])


def test_imputer_strategies(churn):
    df, y, _ = churn
    X = df[["region"]].astype(object)
    rows = np.zeros(len(y), dtype=bool)
    rows[[110, 111, 113]] = True
    rows &= X["region"].notna().to_numpy()

    def make(imputer):
        return make_pipeline(imputer, ErasableOneHotEncoder(), _clf())

    imputer = ErasableSimpleImputer(strategy="most_frequent")
    pipe = forget(make(imputer).fit(X, y), X[rows], y[rows])
    refit = make(clone(imputer)).fit(X[~rows], y[~rows])
    assert_array_equal(pipe[0].statistics_, refit[0].statistics_)
    assert_allclose(pipe.predict_proba(X), refit.predict_proba(X), atol=5e-3)
    # The mode changes while remaining rows were missing: refused.
    mode = refit[0].statistics_[0]
    of_mode = (X["region"] == mode).to_numpy()  # all of them: the mode moves
    pipe = make(clone(imputer)).fit(X, y)
    with pytest.raises(CompositionError, match="most frequent"):
        forget(pipe, X[of_mode], y[of_mode])
    # constant: exact; median: refused by name; the plain imputer: refused.
    Xn = df[["tenure"]]
    sure = np.zeros(len(y), dtype=bool)
    sure[[120, 125]] = True
    constant = make_pipeline(
        ErasableSimpleImputer(strategy="constant", fill_value=0), _clf()
    )
    forget(constant.fit(Xn, y), Xn[sure], y[sure])
    for imputer, match in [
        (ErasableSimpleImputer(strategy="median"), "median"),
        (SimpleImputer(), "ErasableSimpleImputer"),
    ]:
        pipe = make_pipeline(imputer, _clf()).fit(Xn, y)
        with pytest.raises(UnsupportedStepError, match=match):
            forget(pipe, Xn[sure], y[sure])


def test_polynomial_features(churn):
    df, y, _ = churn
    X = df[["charges", "tenure"]].fillna(20.0).to_numpy()
    inner = np.zeros(len(y), dtype=bool)
    inner[[120, 130]] = True
    make = lambda scaler: make_pipeline(  # noqa: E731
        scaler, PolynomialFeatures(2), _clf(C=0.1)
    )
    pipe = forget(make(MaxAbsScaler()).fit(X, y), X[inner], y[inner])
    refit = make(MaxAbsScaler()).fit(X[~inner], y[~inner])
    assert_allclose(pipe.predict_proba(X), refit.predict_proba(X), atol=5e-3)
    pipe = make(StandardScaler()).fit(X, y)
    with pytest.raises(UnsupportedStepError, match="PolynomialFeatures"):
        forget(pipe, X[inner], y[inner])
    # Nothing upstream changes: it passes, as a stateless step.
    pipe = make_pipeline(PolynomialFeatures(2), FunctionTransformer(), _clf(C=0.01))
    forget(pipe.fit(X / 100, y), X[inner] / 100, y[inner])


# -- evidence for any composition ---------------------------------------------------
def test_evidence_for_any_composition(churn):
    df, y, S = churn
    pipe = _forget(churn_pipeline(curvature="hessian").fit(df, y), df[S], y[S])
    search = GridSearchCV(churn_pipeline(), {"clf__C": [0.5, 1.0]}, cv=2).fit(df, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forget(search, df[S], y[S])
    num = df[["charges"]].to_numpy() / 100
    cv = ErasableLogisticRegressionCV(
        Cs=2, cv=2, tol=1e-10, max_iter=1000, l1_ratios=(0.0,), **QUIET
    )
    cv.fit(num, y).partial_forget(num[S], y[S])
    for model, X in [(pipe, df), (search, df), (cv, num)]:
        log = erasure_audit(model)
        assert len(log) == 1 and log[0]["n_rows"] == S.sum()
        json.loads(log.to_json())
        check = verify_erasure(model, X[~S], y[~S], X_query=X[~S])
        assert check.n_remaining == (~S).sum()
        assert check.distance_bound is not None
        assert serving_model(model).predict(X[:5]).shape == (5,)
    report = erasure_report(
        pipe,
        df[S],
        y[S],
        original=churn_pipeline().fit(df, y),
        refit=churn_pipeline().fit(df[~S], y[~S]),
        X_remaining=df[~S],
        y_remaining=y[~S],
    )
    assert report.certificate is not None and len(report.records) == 1
    assert np.isnan(report["updated"]["parameter_distance"])  # a column went
    json.loads(report.to_json())


def test_verify_erasure_checks_the_bookkeeping(churn):
    df, y, S = churn
    pipe = _forget(churn_pipeline().fit(df, y), df[S], y[S])
    with pytest.raises(ValueError, match="record says 230 rows remain"):
        verify_erasure(pipe, df, y)  # the erased rows are still in
    drop = np.flatnonzero(~S)[:3]
    keep = ~S
    keep[drop] = False
    with pytest.raises(ValueError, match="227 rows"):
        verify_erasure(pipe, df[keep], y[keep])
    flipped = y[~S].copy()
    flipped[0] = 1 - flipped[0]
    with pytest.raises(ValueError, match="per class"):
        verify_erasure(pipe, df[~S], flipped)
    check = verify_erasure(pipe, df[~S], y[~S])
    record = json.loads(check.to_json())
    assert "exact minimiser" in record["reference"]
    assert "tol=1e-12" in record["how_to_check"]


def test_bounds_hold_against_a_tight_refit(churn):
    df, y, S = churn
    rows = np.zeros(len(y), dtype=bool)
    rows[100:112] = True
    pipe = churn_pipeline(curvature="hessian").fit(df, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImputedRowsChangedWarning)
        forget(pipe, df[rows], y[rows])
    check = verify_erasure(pipe, df[~rows], y[~rows], X_query=df[~rows])
    # The reference: the exact minimiser, in the updated preprocessing's
    # coordinates (the final step refitted on the rows as it now sees them).
    Z = pipe[:-1].transform(df[~rows])
    tight = clone(pipe[-1]).set_params(tol=1e-12, max_iter=10000).fit(Z, y[~rows])
    theta = np.r_[pipe[-1].coef_.ravel(), pipe[-1].intercept_]
    theta_tight = np.r_[tight.coef_.ravel(), tight.intercept_]
    assert np.linalg.norm(theta - theta_tight) <= check.distance_bound
    gap = np.abs(pipe[-1].predict_proba(Z) - tight.predict_proba(Z)).max()
    assert gap <= check.max_proba_change


def test_pandas_output_keeps_feature_names(churn):
    df, y, S = churn

    def make():
        pipe = churn_pipeline()
        pipe[0].set_params(cat__sparse_output=False).set_output(transform="pandas")
        return pipe

    pipe = make().fit(df, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "X does not have valid ..."
        warnings.simplefilter("ignore", ImputedRowsChangedWarning)
        forget(pipe, df[S], y[S])
    refit = make().fit(df[~S], y[~S])
    assert_array_equal(pipe[-1].feature_names_in_, refit[-1].feature_names_in_)
    assert _proba_gap(pipe, refit, df[~S]) < 5e-3


def test_column_drop_refused_by_name_for_other_structures(churn):
    df, y, S = churn
    prep = ColumnTransformer([("cat", ErasableOneHotEncoder(), ["plan", "region"])])
    clf = ErasableLogisticRegression(curvature_structure="cg")
    pipe = make_pipeline(prep, clf).fit(df, y)
    coef = pipe[-1].coef_.copy()
    with pytest.raises(UnsupportedStepError, match="ConjugateGradientCurvature"):
        forget(pipe, df[S], y[S])
    assert "legacy" in pipe[0].named_transformers_["cat"].categories_[0]  # unchanged
    assert_array_equal(pipe[-1].coef_, coef)
    assert pipe[-1].n_forgotten_ == 0
