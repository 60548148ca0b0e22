"""
=============================================================================
Runbook: erase customer C0421 from a production churn pipeline, and prove it
=============================================================================

The path a practitioner walks, end to end, on a generated churn table (a pandas
DataFrame with numeric and categorical columns, missing values and a customer id):

1. fit a ``Pipeline(ColumnTransformer(...), ErasableLogisticRegression())`` and
   record which customer made which rows in an ``ErasureLedger`` (kept apart from the
   model, with its key in a secret store);
2. save it with an ``ErasureStore`` (atomic, safe with several workers);
3. customer C0421 asks to be forgotten: erase them by id, with their rows as they
   were at training time, checked against the ledger;
4. check the erasure against the remaining data (``verify_erasure``) and against a
   refit (this demo can afford one);
5. file the evidence (the request's record: a ticket number, the time, the row
   count, the certificate; no personal data);
6. ship ``serving_model(pipe)``, which holds coefficients only.

Run: ``python examples/runbook.py`` (a few seconds).
"""

# %%
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression, ErasureLedger, ErasureStore
from sklearn_ssse.certificate import erasure_audit, verify_erasure
from sklearn_ssse.compose import ErasableOneHotEncoder, ErasableSimpleImputer
from sklearn_ssse.ledger import forget_ids
from sklearn_ssse.serving import serving_model

# %% A churn table: one row per customer-month, a few customers with many rows.
rng = np.random.default_rng(0)
n = 3000
customers = np.array([f"C{i:04d}" for i in rng.integers(0, 800, n)])
customers[[3, 250, 1200, 2000, 2999]] = "C0421"  # five months of our customer
plan = rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1])
region = rng.choice(["north", "south", "east", "west"], n)
tenure = rng.gamma(3.0, 8.0, n)
spend = rng.normal(50, 15, n) + 20 * (plan == "pro")
spend[rng.random(n) < 0.05] = np.nan  # missing values
logit = -1.0 + 0.8 * (plan == "basic") - 0.04 * tenure + 0.01 * np.nan_to_num(spend)
churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
X = pd.DataFrame(
    {
        "customer_id": customers,
        "plan": plan,
        "region": region,
        "tenure": tenure,
        "spend": spend,
    }
)
y = churned

# %% 1. Fit the pipeline; the ledger learns which id made which rows.
preprocess = ColumnTransformer(
    [
        ("categories", ErasableOneHotEncoder(), ["plan", "region"]),
        (
            "numbers",
            make_pipeline(ErasableSimpleImputer(), StandardScaler()),
            ["tenure", "spend"],
        ),
    ],
    remainder="drop",  # the customer id never reaches the model
)
pipe = Pipeline(
    [("preprocess", preprocess), ("clf", ErasableLogisticRegression(tol=1e-10))]
)
pipe.fit(X, y)
ledger = ErasureLedger().record_training(X, y, ids=X["customer_id"])
print(f"fitted on {len(X)} rows of {ledger.n_ids} customers")

# %% 2. Save it (atomic; a store refuses to overwrite another worker's erasure).
folder = Path(tempfile.mkdtemp())
secret = b"from your secret store, 16-64 bytes"  # seals the fit point in the file
store = ErasureStore(folder / "churn.model", erasure_key=secret)
store.save(pipe)

# %% 3. C0421 asks to be forgotten: their rows, as they were at training time.
rows = X["customer_id"] == "C0421"
X_c, y_c = X[rows], y[rows]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with store.transaction() as model:  # load newest, erase, save atomically
        forget_ids(model, ledger, ["C0421"], X_c, y_c, request_id="GDPR-2026-0118")
print(f"erased customer C0421: {int(rows.sum())} rows")
for w in caught:  # what the update could not make exact is said by name
    print(f"  note: {w.category.__name__}: {str(w.message)[:90]}...")

# A second request for the same id, or rows that do not match, is refused and
# changes nothing.
for attempt in ("the same id again", "altered rows"):
    try:
        bad = X_c.assign(tenure=X_c["tenure"] + 1) if attempt == "altered rows" else X_c
        target = ["C0421"] if attempt != "altered rows" else ["C0007"]
        forget_ids(store.load(), ledger, target, bad, y_c)
    except ValueError as exc:
        print(f"refused ({attempt}): {type(exc).__name__}")

# %% 4. Check it: against the remaining data, and (here) against a refit.
erased = store.load()
remaining = ~rows.to_numpy()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    proof = verify_erasure(erased, X[remaining], y[remaining])
    refit = clone(pipe).fit(X[remaining], y[remaining])
before = pipe.predict_proba(X)[:, 1]
after = erased.predict_proba(X)[:, 1]
again = refit.predict_proba(X)[:, 1]
print(
    "largest change of a predicted probability: erasing "
    f"{np.abs(after - before).max():.2e}"
    f", erased vs retrained from scratch {np.abs(after - again).max():.2e}"
)
print(
    f"verify_erasure: distance to the exact retrain at most {proof.distance_bound:.3g}"
)

# %% 5. File the evidence: the request's record (no row values, no labels, no id).
record = erasure_audit(erased)[-1]
print(json.dumps({k: record[k] for k in ("request_id", "time", "n_rows")}, indent=1))

# %% 6. Ship the serving model: coefficients only, no erasure state.
shipped = serving_model(erased)
print(
    f"serving model: {type(shipped[-1]).__name__}, no erasure state: "
    f"{not hasattr(shipped[-1], 'erasure_state_')}"
)
