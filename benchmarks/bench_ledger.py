"""What the ledger costs: recording, checking a request, erasing by id.

On a numeric matrix and on a customer table (numeric, categorical and string
columns, NaNs, an id per two rows), at 50 000 rows:

- ``record_training``: rows per second, and the pickled ledger's bytes per row;
- one request of 10 rows: fingerprints + ``claim`` + ``commit``, against the
  model's own ``partial_forget`` of the same rows (measured in the same run);
- one id (two raw rows): ``claim_ids`` + ``commit``.

Run ``python benchmarks/bench_ledger.py`` (under a minute); writes
``benchmarks/results/ledger.md``.
"""

import datetime
import os
import pickle
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.ledger import ErasureLedger

RESULTS = Path(__file__).parent / "results" / "ledger.md"
N, D, K, REPEATS = 50_000, 20, 10, 20


def _numeric(rng):
    X = rng.normal(size=(N, D))
    y = (X[:, 0] + rng.normal(size=N) > 0).astype(int)
    return X, y


def _table(rng):
    df = pd.DataFrame(
        {
            "age": rng.integers(18, 90, size=N).astype(float),
            "spend": rng.normal(50, 15, size=N).round(2),
            "tenure": pd.array(rng.integers(0, 120, size=N), dtype="Int64"),
            "plan": pd.Categorical(rng.choice(["basic", "pro", "max"], size=N)),
            "city": rng.choice(["Lyon", "Oslo", "Porto", "Turku", None], size=N),
            "channel": rng.choice(["web", "shop", "phone"], size=N),
        }
    )
    df.loc[rng.random(N) < 0.05, "spend"] = np.nan
    y = (rng.random(N) < 0.3).astype(int)
    ids = np.array([f"C{i // 2:06d}" for i in range(N)])
    return df, y, ids


def _best(fn, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    rng = np.random.default_rng(0)
    rows = []

    X, y = _numeric(rng)
    start = time.perf_counter()
    ledger = ErasureLedger().record_training(X, y)
    record = time.perf_counter() - start
    size = len(pickle.dumps(ledger)) / N
    model = ErasableLogisticRegression().fit(X, y)
    picks = iter(rng.permutation(N)[: K * 2 * REPEATS].reshape(-1, K))

    def erase_ledger():
        idx = next(picks)
        with ledger.claim(ledger.fingerprints(X[idx], y[idx])):
            pass

    def erase_model():
        idx = next(picks)
        model.partial_forget(X[idx], y[idx])

    t_ledger, t_model = _best(erase_ledger), _best(erase_model)
    rows.append((f"numeric {N} × {D}", N / record, size, t_ledger, t_model, "–"))

    df, y, ids = _table(rng)
    start = time.perf_counter()
    ledger = ErasureLedger().record_training(df, y, ids=ids)
    record = time.perf_counter() - start
    size = len(pickle.dumps(ledger)) / N
    customers = iter(rng.permutation(N // 2)[:REPEATS])

    def erase_id():
        c = next(customers)
        mask = slice(2 * c, 2 * c + 2)
        with ledger.claim_ids([ids[2 * c]], df.iloc[mask], y[mask]):
            pass

    picks = iter(rng.permutation(N)[: K * REPEATS].reshape(-1, K))

    def erase_rows():
        idx = next(picks)
        with ledger.claim(ledger.fingerprints(df.iloc[idx], y[idx])):
            pass

    t_id = _best(erase_id)
    rows.append(
        (
            f"customer table {N} × 6, ids",
            N / record,
            size,
            _best(erase_rows),
            None,
            t_id,
        )
    )

    today = datetime.date.today().isoformat()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, shared"
    out = [f"# The ledger's costs ({today}, {machine})", ""]
    out += [
        f"*record*: `record_training` rows per second. *bytes/row*: the pickled "
        f"ledger. *request*: median over {REPEATS} requests of {K} random rows, "
        "fingerprints + `claim` + `commit`; *model*: the model's own "
        f"`partial_forget` of {K} rows in the same run (binary "
        "`ErasableLogisticRegression`, default settings). *id*: one id of two raw "
        "rows, `claim_ids` + `commit`.",
        "",
        "| data | record (rows/s) | bytes/row | request (ms) | model (ms) "
        "| ledger / model | id (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rate, size, t_req, t_mod, t_id in rows:
        ratio = "–" if t_mod is None else f"{t_req / t_mod:.2f}"
        model_ms = "–" if t_mod is None else f"{1e3 * t_mod:.2f}"
        id_ms = t_id if isinstance(t_id, str) else f"{1e3 * t_id:.2f}"
        out.append(
            f"| {name} | {rate:,.0f} | {size:.0f} | {1e3 * t_req:.2f} | {model_ms} "
            f"| {ratio} | {id_ms} |"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
