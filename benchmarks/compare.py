"""Compare erasure methods on bundled scikit-learn data: fidelity to the refit, time.

For every data set (binary: breast_cancer; multiclass: wine, digits; multi-output: five
binary patient attributes derived from diabetes) and every kind of deletion request
(a random 1 % of the training rows, half of one class or attribute, all of one class or
attribute), each erasure method gets its hyper-parameter chosen on a **calibration**
deletion (same kind, another group or other rows; one refit) and is then applied to a
**fresh** deletion, where it is compared with the refit on that deletion:

- time of the update (the refit's time for ``retrain``);
- accuracy on the four splits: remaining training rows, forgotten rows, test rows
  outside the erased group, test rows of the erased group;
- γ (similarity ratio, multi-output) or δ (normalized confusion distance, binary and
  multiclass) on the forgotten rows (γ of a binary model is undefined whenever the
  forgotten rows hold one class, as they do in every class-based deletion);
- relative parameter distance ``‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖``.

Methods (all from :mod:`sklearn_ssse.baselines`): ``retrain`` (the reference), SSSE
with the full empirical Fisher (ε tuned; ``leave_out`` True and False), the influence
update (Hessian, ε = 1 with and without leave-out, and ε tuned), SSSE with a
diagonal-only Fisher (``block_size=1``, ε tuned), the scrubbing update of Golatkar et
al. (diagonal Fisher, the diagonal SSSE step at its tuned ε plus Gaussian noise,
``noise_scale`` tuned over positive values, seeded) and one gradient-ascent step
(``learning_rate`` tuned). Results are averaged over seeds (train/test split, groups,
rows and noise all depend on the seed only), and the script writes

- ``benchmarks/results/compare.md``: settings, a summary, findings computed from the
  numbers, and one table per data set and deletion kind;
- ``benchmarks/results/compare.png``: fidelity against update time, per method.

Run::

    python benchmarks/compare.py            # 8 seeds, about 2 minutes on 2 cores
    python benchmarks/compare.py --quick    # 1 seed, coarse grids, seconds
"""

import argparse
import copy
import datetime
import os
import platform
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from statistics import median

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.multioutput import MultiOutputClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_ssse import ErasableLogisticRegression, ErasableMultiOutputClassifier
from sklearn_ssse.baselines import (
    gradient_ascent_update,
    retrain,
    scrubbing_update,
    ssse_update,
)
from sklearn_ssse.datasets import load_diabetes_attributes
from sklearn_ssse.metrics import erasure_report, relative_parameter_distance
from sklearn_ssse.model_selection import forget_scale_curve, make_erasure_scorer

RESULTS = Path(__file__).resolve().parent / "results"

# Hyper-parameters of every fitted model (the refit uses the same ones). A tight
# tolerance so that the refit reference is the optimum, not the solver's stopping point.
MODEL_PARAMS = {"C": 1.0, "tol": 1e-8, "max_iter": 10_000}

GRIDS = {
    "full": {
        "forget_scale": np.logspace(-3, 2, 51),
        "learning_rate": np.logspace(-6, 0, 31),
        "noise_scale": np.logspace(-5, 0, 11),
    },
    "quick": {
        "forget_scale": np.logspace(-3, 2, 11),
        "learning_rate": np.logspace(-6, 0, 7),
        "noise_scale": np.logspace(-5, 0, 6),
    },
}


# -- data ------------------------------------------------------------------------------
def _diabetes_attributes():
    """The realistic multi-attribute problem (sklearn_ssse.datasets)."""
    return load_diabetes_attributes()


ATTRIBUTES = ["sex", "progression", "severe progression", "high BMI", "high BP"]


@dataclass
class Dataset:
    name: str
    task: str  # "binary", "multiclass" or "multioutput"
    load: object


DATASETS = {
    "breast_cancer": Dataset(
        "breast_cancer", "binary", lambda: load_breast_cancer(return_X_y=True)
    ),
    "wine": Dataset("wine", "multiclass", lambda: load_wine(return_X_y=True)),
    "digits": Dataset("digits", "multiclass", lambda: load_digits(return_X_y=True)),
    "diabetes_attributes": Dataset(
        "diabetes_attributes", "multioutput", _diabetes_attributes
    ),
}
KINDS = ["random 1 %", "half of a group", "all of a group"]
SKIPPED = {
    "binary": {
        "all of a group": "a binary refit cannot be trained on one class "
        "(scikit-learn refuses it), so there is no reference"
    },
    "multioutput": {
        "all of a group": "the attribute's output would have one class left, which "
        "scikit-learn cannot refit, so there is no reference"
    },
}


def _kind_label(kind, task):
    group = "attribute" if task == "multioutput" else "class"
    return kind.replace("a group", f"one {group}")


@dataclass
class Deletion:
    rows: np.ndarray  # training rows to forget
    test_erased: np.ndarray | None  # test rows of the erased group
    group: str | None


def _groups(task, y):
    """Names and membership masks of the groups (classes or attributes) of ``y``."""
    if task == "multioutput":
        return ATTRIBUTES, [y[:, j] == 1 for j in range(y.shape[1])]
    classes = np.unique(y)
    return [f"class {c}" for c in classes], [y == c for c in classes]


def draw_deletions(kind, task, y, y_test, rng):
    """A calibration and a fresh deletion of the same kind, on disjoint rows/groups."""
    n = len(y)
    if kind == "random 1 %":
        k = max(2, round(0.01 * n))
        rows = rng.permutation(n)[: 2 * k]
        return [Deletion(np.sort(part), None, None) for part in (rows[:k], rows[k:])]
    names, masks = _groups(task, y)
    _, test_masks = _groups(task, y_test)
    deletions = []
    for g in rng.choice(len(masks), 2, replace=False):
        members = np.flatnonzero(masks[g])
        if kind == "half of a group":
            members = np.sort(rng.choice(members, len(members) // 2, replace=False))
        deletions.append(Deletion(members, test_masks[g], names[g]))
    return deletions


# -- models ----------------------------------------------------------------------------
def make_model(task, **params):
    base = ErasableLogisticRegression(**MODEL_PARAMS, **params)
    return ErasableMultiOutputClassifier(base) if task == "multioutput" else base


def make_plain(task):
    base = LogisticRegression(**MODEL_PARAMS)
    return MultiOutputClassifier(base) if task == "multioutput" else base


def configured(model, **params):
    """A copy of a fitted model with request parameters (``forget_scale``, ...) set.

    For a multi-output model they are set on the template *and* on every fitted
    output: the baseline functions read them from ``estimators_``, while
    ``partial_forget`` reads them from ``estimator``.
    """
    new = copy.deepcopy(model)
    if hasattr(new, "estimators_"):
        new.set_params(**{f"estimator__{k}": v for k, v in params.items()})
        for est in new.estimators_:
            est.set_params(**params)
    else:
        new.set_params(**params)
    return new


def timed(function, repeats):
    """The result of ``function()`` and the median of ``repeats`` wall-clock times."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, median(times)


# -- methods ---------------------------------------------------------------------------
@dataclass
class Method:
    name: str
    model: str | None  # which fitted model: "fisher", "hessian", "diagonal"
    tune: str | None  # the tuned hyper-parameter
    leave_out: bool = True
    color: str = "k"
    marker: str = "o"


METHODS = [
    Method("original (no erasure)", None, None, color="0.6", marker="x"),
    Method("retrain (reference)", None, None, color="k", marker="s"),
    Method("SSSE, Fisher", "fisher", "forget_scale", color="C0", marker="o"),
    Method(
        "SSSE, Fisher, no leave-out",
        "fisher",
        "forget_scale",
        leave_out=False,
        color="C9",
        marker="o",
    ),
    Method("influence (Hessian), ε = 1", "hessian", None, color="C1", marker="^"),
    Method(
        "influence, ε = 1, no leave-out",
        "hessian",
        None,
        leave_out=False,
        color="C8",
        marker="^",
    ),
    Method("influence, ε tuned", "hessian", "forget_scale", color="C3", marker="v"),
    Method("SSSE, diagonal Fisher", "diagonal", "forget_scale", color="C2", marker="D"),
    Method("scrubbing (Golatkar)", "diagonal", "noise_scale", color="C4", marker="P"),
    Method("gradient ascent", "fisher", "learning_rate", color="C5", marker="*"),
]
REFERENCES = ("original (no erasure)", "retrain (reference)")
PARAM_SYMBOL = {"forget_scale": "ε", "learning_rate": "η", "noise_scale": "σ"}


FULL, DIAGONAL, SCRUB = "SSSE, Fisher", "SSSE, diagonal Fisher", "scrubbing (Golatkar)"
FULL_NO_LO = "SSSE, Fisher, no leave-out"
INFLUENCE, INFLUENCE_NO_LO = (
    "influence (Hessian), ε = 1",
    "influence, ε = 1, no leave-out",
)
RETRAIN = "retrain (reference)"
CRITERIA = {
    "behaviour": "γ (multi-output) or −δ (binary, multiclass)",
    "distance": "relative parameter distance",
}


def _behaviour_metric(task):
    """γ for multi-output models, δ otherwise.

    γ compares per-output ROC-AUCs on the forgotten rows; a binary model has one
    output, whose AUC is undefined whenever those rows hold one class, which every
    class-based deletion does (γ would be undefined for every candidate). δ, from
    confusion matrices, is defined there.
    """
    return (
        "similarity_ratio" if task == "multioutput" else "normalized_confusion_distance"
    )


def _scorer_name(task):
    metric = _behaviour_metric(task)
    return "neg_" + metric if metric.startswith("normalized") else metric


def closeness(task, behaviour):
    """γ, or 1 − δ: 1 = the refit's behaviour on the forgotten rows, 0 = original."""
    return behaviour if task == "multioutput" else 1.0 - behaviour


def select(grid, behaviour, distance, criterion):
    """The best value of ``grid`` and whether it lies on the grid's edge.

    ``behaviour``: γ or −δ at every value (greater is better); ``distance``: relative
    parameter distance (smaller is better; NaN when the models cannot be compared).
    Ties of the criterion are broken by the other measure: when γ or δ is undefined
    (the original and the refit behave alike on the rows) every candidate scores 0.5
    and the distance decides.
    """
    behaviour = np.where(np.isnan(behaviour), -np.inf, behaviour)
    nearness = np.where(np.isnan(distance), -np.inf, -np.asarray(distance))
    first, second = (
        (behaviour, nearness) if criterion == "behaviour" else (nearness, behaviour)
    )
    ties = np.flatnonzero(np.isclose(first, first.max(), rtol=0, atol=1e-12))
    best = int(ties[np.argmax(second[ties])])
    return float(grid[best]), best in (0, len(grid) - 1)


def prepare(method, models, value, diagonal_scale):
    """A copy of the model ``method`` starts from, with its hyper-parameters set."""
    if method.tune == "forget_scale":
        params = {"forget_scale": value}
    elif method.tune == "noise_scale":  # the Newton step of the diagonal SSSE
        params = {"forget_scale": diagonal_scale}
    else:
        params = {}
    return configured(models[method.model], leave_out=method.leave_out, **params)


def apply(method, start, X_S, y_S, value, noise_seed):
    """The updated copy of ``start`` after ``method`` forgets ``(X_S, y_S)``."""
    if method.tune == "learning_rate":
        return gradient_ascent_update(start, X_S, y_S, learning_rate=value)
    if method.tune == "noise_scale":
        return scrubbing_update(
            start, X_S, y_S, noise_scale=value, random_state=noise_seed
        )
    return ssse_update(start, X_S, y_S)


@dataclass
class Context:
    task: str
    grids: dict
    comparable: bool  # whether parameters of the model and the refit can be compared
    noise_seeds: tuple  # calibration, fresh


def calibration_curve(method, models, X_S, y_S, refit, ctx, diagonal_scale=None):
    """``(grid, behaviour, distance)`` of ``method`` on the calibration rows."""
    grid = ctx.grids[method.tune]
    model = models[method.model]
    scorer = _scorer_name(ctx.task)
    distance = np.full(len(grid), np.nan)
    if method.tune == "forget_scale":  # one step, every ε (the update is linear in ε)
        curve = forget_scale_curve(
            model,
            X_S,
            y_S,
            refit_estimator=refit,
            forget_scales=grid,
            scoring=[scorer]
            + (["neg_relative_parameter_distance"] if ctx.comparable else []),
            leave_out=method.leave_out,
            zero_division=0.5,
        )
        if ctx.comparable:
            distance = -curve.scores["neg_relative_parameter_distance"]
        return grid, curve.scores[scorer], distance
    score = make_erasure_scorer(
        scorer, refit_estimator=refit, original_estimator=model, zero_division=0.5
    )
    start = prepare(method, models, None, diagonal_scale)
    behaviour = np.empty(len(grid))
    for i, value in enumerate(grid):
        updated = apply(method, start, X_S, y_S, value, ctx.noise_seeds[0])
        behaviour[i] = score(updated, X_S, y_S)
        if ctx.comparable:
            distance[i] = relative_parameter_distance(
                updated, original=model, refit=refit
            )
    return grid, behaviour, distance


# -- one data set and seed -------------------------------------------------------------
def run_dataset(dataset, seed, args, grids):
    """Result rows (per criterion, kind and method) and fit timings for one seed."""
    X, y = dataset.load()
    stratify = y if dataset.task != "multioutput" else None
    X, X_test, y, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=stratify
    )
    scaler = StandardScaler().fit(X)
    X, X_test = scaler.transform(X), scaler.transform(X_test)

    fits, models = {}, {}
    for key, params in (
        ("fisher", {}),
        ("hessian", {"curvature": "hessian"}),
        ("diagonal", {"block_size": 1}),
    ):
        models[key], fits[key] = timed(
            lambda params=params: make_model(dataset.task, **params).fit(X, y), 1
        )
    _, fits["plain"] = timed(lambda: make_plain(dataset.task).fit(X, y), 1)

    rows = []
    dataset_id = list(DATASETS).index(dataset.name)
    metric = _behaviour_metric(dataset.task)
    tuned = [m for m in METHODS if m.tune is not None]  # the diagonal before scrubbing
    for kind_id, kind in enumerate(KINDS):
        if kind in SKIPPED.get(dataset.task, {}):
            continue
        rng = np.random.default_rng([seed, dataset_id, kind_id])
        calibration, fresh = draw_deletions(kind, dataset.task, y, y_test, rng)
        seeds = tuple(int(s) for s in rng.integers(2**31, size=2))

        # Calibration: one refit, the scores of every candidate value, then a choice
        # per criterion.
        keep = np.setdiff1d(np.arange(len(y)), calibration.rows)
        refit_cal = make_plain(dataset.task).fit(X[keep], y[keep])
        try:
            relative_parameter_distance(
                models["fisher"], original=models["fisher"], refit=refit_cal
            )
            comparable = True
        except ValueError:  # a 3-class model whose refit is binary
            comparable = False
        ctx = Context(dataset.task, grids, comparable, seeds)
        X_C, y_C = X[calibration.rows], y[calibration.rows]
        curves, chosen = {}, {}
        for criterion in args.criteria:
            chosen[criterion] = {}
            for method in tuned:
                scale = None
                if method.tune == "noise_scale":
                    scale = chosen[criterion][DIAGONAL][0]
                key = (method.name, scale)
                if key not in curves:
                    curves[key] = calibration_curve(
                        method, models, X_C, y_C, refit_cal, ctx, scale
                    )
                chosen[criterion][method.name] = select(*curves[key], criterion)

        # The fresh deletion.
        keep = np.setdiff1d(np.arange(len(y)), fresh.rows)
        X_S, y_S = X[fresh.rows], y[fresh.rows]
        refit, refit_time = timed(
            lambda keep=keep: retrain(make_plain(dataset.task), X[keep], y[keep]),
            args.repeats,
        )
        evaluated = {}
        for criterion in args.criteria:
            for method in METHODS:
                value, at_edge = chosen[criterion].get(method.name, (None, False))
                scale = None
                if method.tune == "noise_scale":
                    scale = chosen[criterion][DIAGONAL][0]
                key = (method.name, value, scale)
                if key not in evaluated:
                    if method.name == "original (no erasure)":
                        updated, seconds = models["fisher"], np.nan
                    elif method.name == RETRAIN:
                        updated, seconds = refit, refit_time
                    else:
                        start = prepare(method, models, value, scale)
                        updated, seconds = timed(
                            partial(apply, method, start, X_S, y_S, value, seeds[1]),
                            args.repeats,
                        )
                    report = erasure_report(
                        updated,
                        X_S,
                        y_S,
                        original=models["fisher"],
                        refit=refit,
                        X_remaining=X[keep],
                        y_remaining=y[keep],
                        X_test=X_test,
                        y_test=y_test,
                        test_erased=fresh.test_erased,
                        metric=metric,
                    )["updated"]
                    evaluated[key] = {
                        "time": seconds,
                        **{split: report[f"accuracy_{split}"] for split in SPLITS},
                        "behaviour": report[metric],
                        "distance": report["parameter_distance"],
                    }
                rows.append(
                    {
                        "criterion": criterion,
                        "dataset": dataset.name,
                        "kind": kind,
                        "seed": seed,
                        "method": method.name,
                        "param": method.tune,
                        "value": value,
                        "at_edge": at_edge,
                        "n_forgotten": len(fresh.rows),
                        **evaluated[key],
                    }
                )
    return rows, fits, (len(y), len(y_test))


SPLITS = ("remaining", "forgotten", "test_kept", "test_erased")


# -- aggregation -----------------------------------------------------------------------
def _nanmean(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else np.nan


def aggregate(rows):
    """Seed means per (criterion, dataset, kind, method)."""
    cells = {}
    for row in rows:
        key = (row["criterion"], row["dataset"], row["kind"], row["method"])
        cells.setdefault(key, []).append(row)
    table = {}
    for key, group in cells.items():
        entry = {
            name: _nanmean([r[name] for r in group])
            for name in (*SPLITS, "behaviour", "distance", "n_forgotten")
        }
        times = [r["time"] for r in group if not np.isnan(r["time"])]
        values = [r["value"] for r in group if r["value"] is not None]
        entry.update(
            time=median(times) if times else np.nan,
            value=float(np.exp(np.mean(np.log(values)))) if values else None,
            param=group[0]["param"],
            at_edge=sum(r["at_edge"] for r in group),
            n_defined=int(np.sum(~np.isnan([r["behaviour"] for r in group]))),
            n_seeds=len(group),
        )
        table[key] = entry
    return table


# -- findings --------------------------------------------------------------------------
class Tally:
    """Settings where method ``a`` is closer to the refit than ``b`` (seed means)."""

    def __init__(self):
        self.better = self.worse = self.ties = 0

    def add(self, a, b):
        """``a``, ``b``: errors (smaller is better); NaN is skipped."""
        if np.isnan(a) or np.isnan(b):
            return
        if np.isclose(a, b, rtol=1e-3, atol=1e-9):
            self.ties += 1
        elif a < b:
            self.better += 1
        else:
            self.worse += 1

    def __str__(self):
        return f"{self.better}/{self.worse}/{self.ties}"

    def verdict(self):
        b, w = self.better, self.worse
        if b + w == 0:
            return "no evidence either way"
        if b >= 2 * w and b > w:
            return "supported"
        if w >= 2 * b and w > b:
            return "contradicted"
        return "mixed"


def _error(table, key, measure, task):
    """The error of a cell for ``measure``: distance, or 1 − (γ or 1 − δ)."""
    value = table[key][measure]
    return value if measure == "distance" else 1.0 - closeness(task, value)


MEASURES = {"distance": "parameter distance", "behaviour": "γ/δ"}


def _compare_methods(table, settings, pairs):
    """Per measure: a Tally over settings, criteria and (a, b) method pairs.

    ``pairs``: ``(criterion, a, b)``; also the per-pair strings for the text.
    """
    tallies, texts = {m: Tally() for m in MEASURES}, []
    for criterion, a, b in pairs:
        parts = []
        for measure, label in MEASURES.items():
            tally = Tally()
            for dataset, kind, task in settings:
                errors = [
                    _error(table, (criterion, dataset, kind, name), measure, task)
                    for name in (a, b)
                ]
                tally.add(*errors)
                tallies[measure].add(*errors)
            parts.append(f"{label} {tally}")
        texts.append(
            f"{a} vs {b}"
            + ("" if a == INFLUENCE else f" (chosen by {MEASURES[criterion]})")
            + ": "
            + ", ".join(parts)
        )
    return tallies, texts


def _verdicts(tallies):
    return "; ".join(
        f"on {MEASURES[m]}: **{t.verdict()}** ({t})" for m, t in tallies.items()
    )


def findings(table, settings, criteria):
    n = len(settings)
    lines = [
        "Counts are *better/worse/tied* over the "
        f"{n} settings (data set × deletion kind, seed means), for the first method "
        "against the second: better = closer to the refit (smaller parameter "
        "distance; higher γ or lower δ). Ties: equal within 0.1 %. A verdict is "
        "'supported' when the wins are at least twice the losses, 'contradicted' "
        "in the opposite case, 'mixed' otherwise.",
        "",
    ]
    # 1. Off-diagonal Fisher terms.
    pairs = [(c, FULL, other) for c in criteria for other in (DIAGONAL, SCRUB)]
    tallies, texts = _compare_methods(table, settings, pairs)
    lines += [
        "**1. Do the off-diagonal Fisher terms matter** (full-Fisher SSSE against "
        "the diagonal-Fisher SSSE and scrubbing)? " + "; ".join(texts) + ". "
        "Pooled: " + _verdicts(tallies) + ".",
        "",
    ]
    # 2. Partial against whole-group removal.
    whole = {(d, t) for d, k, t in settings if k == "all of a group"}
    pairs = [
        (d, t) for d, k, t in settings if k == "half of a group" and (d, t) in whole
    ]
    tallies, texts = {m: Tally() for m in MEASURES}, []
    methods = [(c, FULL) for c in criteria] + [(criteria[0], INFLUENCE)]
    for dataset, task in pairs:
        for criterion, method in methods:
            half = (criterion, dataset, "half of a group", method)
            gone = (criterion, dataset, "all of a group", method)
            parts = []
            for measure, label in MEASURES.items():
                errors = [_error(table, key, measure, task) for key in (gone, half)]
                tallies[measure].add(*errors)
                if not np.isnan(errors).any():
                    label = "δ" if measure == "behaviour" else label
                    parts.append(f"{label} {errors[0]:.2f} vs {errors[1]:.2f}")
            name = (
                method
                if method == INFLUENCE
                else f"{method} (chosen by {MEASURES[criterion]})"
            )
            texts.append(f"{dataset}, {name}: " + ", ".join(parts))
    gaps = np.array(
        [
            [
                table[criteria[0], d, k, FULL][split]
                - table[criteria[0], d, k, RETRAIN][split]
                for split in ("forgotten", "test_erased")
            ]
            for d, k, _ in settings
            if k == "half of a group"
        ]
    ).reshape(-1, 2)
    lines += [
        "**2. Is partial removal harder than removing a whole group?** Only the "
        "multiclass data sets have both kinds (whole-group removal is skipped for "
        "binary and multi-output data, see below). Parameter distance and δ after "
        "removing all of a class vs half of one: "
        + "; ".join(texts)
        + ". Pooled ('better' = the whole-group removal is closer to its refit, as "
        "the claim says): "
        + _verdicts(tallies)
        + ". Caveat: when a whole class goes, every method built on the model's "
        "engine stops predicting it (its column is masked), so δ there measures "
        "little beyond the mask. The paper also saw SSSE misclassify a partially "
        "removed group more than the refit does: here the accuracy gap SSSE − refit "
        f"after half-group removals (mean over the {len(gaps)} such settings, "
        f"{CRITERIA[criteria[0]]} criterion) is {_signed(gaps[:, 0])} on the "
        f"forgotten rows and {_signed(gaps[:, 1])} on the erased group's test rows "
        "(negative = more aggressive than the refit).",
        "",
    ]
    # 3. Leave-out curvature.
    pairs = [(c, FULL, FULL_NO_LO) for c in criteria] + [
        (criteria[0], INFLUENCE, INFLUENCE_NO_LO)
    ]
    tallies, texts = _compare_methods(table, settings, pairs)
    ratios = {
        name: median(
            table[criteria[0], d, k, lo]["distance"]
            / table[criteria[0], d, k, no]["distance"]
            for d, k, _ in settings
            if not np.isnan(table[criteria[0], d, k, lo]["distance"])
        )
        for name, lo, no in (
            ("SSSE", FULL, FULL_NO_LO),
            ("influence", INFLUENCE, INFLUENCE_NO_LO),
        )
    }
    lines += [
        "**3. Does leave-out curvature help** (each update with `leave_out=True` "
        "against itself with `leave_out=False`)? " + "; ".join(texts) + ". Median "
        "ratio of parameter distances, leave-out / not: "
        f"SSSE {ratios['SSSE']:.2f}, influence {ratios['influence']:.2f}. Pooled: "
        + _verdicts(tallies)
        + ".",
        "",
    ]
    # Other observations: the Hessian against the Fisher, and time.
    crit = criteria[0]
    influence = Tally()
    for d, k, _ in settings:
        influence.add(
            table[crit, d, k, INFLUENCE]["distance"],
            table[crit, d, k, FULL]["distance"],
        )

    def median_time(name):
        return median(table[crit, d, k, name]["time"] for d, k, _ in settings)

    speedups = [
        table[crit, d, k, RETRAIN]["time"] / table[crit, d, k, FULL]["time"]
        for d, k, _ in settings
    ]
    lines += [
        "**Also.** The influence update (exact Hessian, ε = 1, no tuning) is closer "
        f"to the refit's parameters than the tuned Fisher SSSE in {influence.better} "
        f"settings and farther in {influence.worse}. Times: the "
        f"median update takes {_seconds(median_time(FULL))} for full SSSE, "
        f"{_seconds(median_time(DIAGONAL))} for diagonal SSSE and "
        f"{_seconds(median_time(INFLUENCE))} for the influence update, against "
        f"{_seconds(median_time(RETRAIN))} to retrain (speed-up of full SSSE "
        f"{min(speedups):.1f}× to {max(speedups):.1f}×): these data sets are so "
        "small that retraining is cheap, so the times say little about large data "
        "(see `bench_core.py` and `bench_multioutput.py` for that).",
        "",
    ]
    return lines


def _signed(values):
    values = values[~np.isnan(values)]
    return f"{np.mean(values):+.3f}" if len(values) else "n/a"


# -- output ----------------------------------------------------------------------------
def _seconds(value):
    if np.isnan(value):
        return "—"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def _num(value, digits=3):
    return "—" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def summary(table, settings, criterion):
    lines = [
        "| method | γ or 1 − δ (↑, mean) | parameter distance (↓, mean) | "
        "update time (median) | speed-up vs retrain (median) | "
        "smallest distance in (settings) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    erasers = [m.name for m in METHODS if m.name not in REFERENCES]
    wins = dict.fromkeys(erasers, 0)
    for dataset, kind, _ in settings:
        d = [table[criterion, dataset, kind, name]["distance"] for name in erasers]
        if not np.all(np.isnan(d)):
            wins[erasers[int(np.nanargmin(d))]] += 1
    for method in METHODS:
        cells = [table[criterion, d, k, method.name] for d, k, _ in settings]
        close = [closeness(t, c["behaviour"]) for (_, _, t), c in zip(settings, cells)]
        speed = np.array(
            [
                table[criterion, d, k, RETRAIN]["time"] / c["time"]
                for (d, k, _), c in zip(settings, cells)
            ]
        )
        lines.append(
            f"| {method.name} | {_num(_nanmean(close))} | "
            f"{_num(_nanmean([c['distance'] for c in cells]))} | "
            f"{_seconds(median(c['time'] for c in cells))} | "
            + ("—" if np.all(np.isnan(speed)) else f"{np.nanmedian(speed):.1f}×")
            + f" | {wins.get(method.name, '—')} |"
        )
    return lines


def setting_table(table, criterion, dataset, kind, task):
    score = "γ (↑)" if task == "multioutput" else "δ (↓)"
    lines = [
        f"| method | tuned | time | acc. remaining | acc. forgotten | "
        f"acc. test kept | acc. test erased | {score} | distance (↓) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method in METHODS:
        c = table[criterion, dataset, kind, method.name]
        tuned = "—"
        if c["value"] is not None:
            tuned = f"{PARAM_SYMBOL[c['param']]} = {c['value']:.3g}"
            if c["at_edge"]:
                tuned += f" (edge ×{c['at_edge']})"
        behaviour = _num(c["behaviour"])
        if 0 < c["n_defined"] < c["n_seeds"]:
            behaviour += f" ({c['n_defined']}/{c['n_seeds']})"
        lines.append(
            f"| {method.name} | {tuned} | {_seconds(c['time'])} | "
            + " | ".join(_num(c[split]) for split in SPLITS)
            + f" | {behaviour} | {_num(c['distance'])} |"
        )
    return lines


def _command(args):
    command = "python benchmarks/compare.py" + (" --quick" if args.quick else "")
    if args.seeds != (1 if args.quick else DEFAULT_SEEDS):
        command += f" --seeds {args.seeds}"
    if args.criterion != "both":
        command += f" --criterion {args.criterion}"
    if args.datasets != list(DATASETS):
        command += " --datasets " + " ".join(args.datasets)
    return command


def markdown(table, settings, info, args, grids, elapsed):
    today = datetime.date.today().isoformat()
    criteria = args.criteria
    grid_text = ", ".join(
        f"{PARAM_SYMBOL[name]}: {len(g)} log-spaced values in [{g[0]:.0e}, {g[-1]:.0e}]"
        for name, g in grids.items()
    )
    lines = [
        f"# Erasure methods compared on scikit-learn's bundled data ({today})",
        "",
        f"Generated by `{_command(args)}` in {elapsed:.0f} s. "
        f"Seeds: {args.seeds} (the train/test split 75/25, the groups, rows and "
        "noise depend on the seed only). Model: "
        "`ErasableLogisticRegression(C=1.0, tol=1e-8, max_iter=10000)` on "
        "standardised features (one per output in `ErasableMultiOutputClassifier` "
        "for the multi-output data); the refit reference is `LogisticRegression` "
        "with the same parameters fitted on the remaining rows. Each tuned "
        "hyper-parameter is chosen on a **calibration** deletion of the same kind "
        "(another class or attribute, or other random rows; one refit) and applied "
        "to a **fresh** deletion; every number below is measured on the fresh one. "
        "Selection criteria: "
        + " and ".join(f"'{c}' ({CRITERIA[c]})" for c in criteria)
        + ", each with ties broken by the other measure (when γ or δ is undefined on "
        "the calibration rows every candidate scores 0.5 and the distance decides). "
        f"Grids: {grid_text}. Scrubbing takes the diagonal-SSSE step at that "
        "method's chosen ε and tunes σ > 0 only (σ = 0 is the diagonal SSSE row). "
        f"Times: median of {args.repeats} run(s) on one BLAS thread of the baseline "
        "function, which copies the model and takes the rows out of its stored "
        "curvature whatever the step (gradient ascent included); for retrain, a "
        "plain `LogisticRegression` fit. Machine: "
        f"{os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, NumPy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}."
        + (" **Quick run: one seed, coarse grids.**" if args.quick else ""),
        "",
        "Measures: accuracy on the remaining training rows, the forgotten rows, the "
        "test rows outside the erased group and the test rows of the erased group (— "
        "for random deletions: no group); γ for the multi-output data (similarity "
        "ratio of per-output ROC-AUC on the forgotten rows, 1 = the refit's) or δ for "
        "binary and multiclass data (normalized confusion distance, 0 = the refit's; "
        "δ rather than γ for binary data because one output's AUC is undefined on "
        "rows of one class, i.e. in every class-based deletion), averaged over the "
        "seeds where defined (count in "
        "brackets when not all; — when never: the original and the refit behave "
        "alike on so few rows); relative parameter distance "
        "‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖ (0 = the refit, 1 = no erasure; — where a "
        "3-class model's refit is binary and the parameters cannot be compared). "
        "'γ or 1 − δ' puts both behavioural scores on one scale: 1 = behaves like "
        "the refit on the forgotten rows, 0 = like the original.",
        "",
    ]
    for criterion in criteria:
        lines += [
            f"## Summary, hyper-parameters chosen by {CRITERIA[criterion]}",
            "",
            *summary(table, settings, criterion),
            "",
        ]
    lines += [
        "'Smallest distance in': settings where the method has the smallest "
        "mean parameter distance among the erasure methods (retrain excluded).",
        "",
        "## Findings",
        "",
        *findings(table, settings, criteria),
        f"## Per data set and deletion kind (chosen by {CRITERIA[criteria[0]]})",
        "",
    ]
    for name in info:
        task = DATASETS[name].task
        n_train, n_test, fits = info[name]
        lines += [
            f"### {name} ({task}; {n_train} training rows, {n_test} test rows)",
            "",
            "One-off fit on all training rows (first seed): plain `LogisticRegression` "
            f"{_seconds(fits['plain'])}; erasable with the full Fisher "
            f"{_seconds(fits['fisher'])}, the Hessian {_seconds(fits['hessian'])}, "
            f"the diagonal Fisher {_seconds(fits['diagonal'])}.",
            "",
        ]
        for kind in KINDS:
            label = _kind_label(kind, task)
            if kind in SKIPPED.get(task, {}):
                lines += [f"**{label}**: skipped: {SKIPPED[task][kind]}.", ""]
                continue
            n = table[criteria[0], name, kind, RETRAIN]["n_forgotten"]
            lines += [
                f"**{label}** ({n:.0f} rows forgotten on average)",
                "",
                *setting_table(table, criteria[0], name, kind, task),
                "",
            ]
    return "\n".join(lines)


def figure(table, settings, criterion, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.8), constrained_layout=True)
    for method in METHODS:
        if method.name == "original (no erasure)":
            continue
        cells = [(t, table[criterion, d, k, method.name]) for d, k, t in settings]
        times = np.array([c["time"] for _, c in cells])
        close = np.array([closeness(t, c["behaviour"]) for t, c in cells])
        dist = np.array([c["distance"] for _, c in cells])
        for ax, values in zip(axes, (close, dist)):
            ok = ~np.isnan(values) & ~np.isnan(times)
            if method.name == RETRAIN and ax is axes[1]:
                values = np.where(ok, 1e-3, values)  # 0 on a log axis: the floor
            style = {"color": method.color, "marker": method.marker}
            ax.scatter(times[ok], values[ok], alpha=0.3, s=25, **style)
            if ok.any():
                ax.scatter(
                    np.median(times[ok]),
                    np.mean(values[ok]),
                    s=150,
                    edgecolor="k",
                    label=method.name,
                    **style,
                )
    for ax, level in zip(axes, (0.0, 1.0)):
        ax.axhline(level, color="0.5", lw=0.8, ls="--")
        ax.text(
            0.01,
            level,
            "original (no erasure)",
            color="0.4",
            va="bottom",
            fontsize=8,
            transform=ax.get_yaxis_transform(),
        )
    axes[0].set_ylabel("γ (multi-output) or 1 − δ (binary, multiclass)   ↑ better")
    axes[0].set_title("Behaviour on the forgotten rows (1 = refit)")
    axes[1].set_ylabel("relative parameter distance to the refit   ↓ better")
    axes[1].set_yscale("log")
    axes[1].set_title("Parameters (retrain = 0, drawn at 10⁻³)")
    for ax in axes:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x * 1e3:g} ms"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("time of the update (retrain: the refit), log scale")
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8)
    fig.suptitle(
        "Erasure methods on bundled scikit-learn data (hyper-parameters chosen by "
        f"{CRITERIA[criterion]})\nsmall markers: one data set × deletion kind (seed "
        "mean); large: mean over them, at the median time",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ------------------------------------------------------------------------------
DEFAULT_SEEDS = 8


def main(argv=None):
    """Run the comparison and write the markdown and the figure; returns the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, coarse grids")
    parser.add_argument(
        "--seeds", type=int, default=None, help=f"default {DEFAULT_SEEDS} (1 quick)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timing repeats (default 3, 1 quick)"
    )
    parser.add_argument(
        "--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS)
    )
    parser.add_argument(
        "--criterion",
        choices=["both", *CRITERIA],
        default="both",
        help="how hyper-parameters are chosen on the calibration deletion; the "
        "detailed tables and the figure use the first (γ/−δ when 'both')",
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (1 if args.quick else DEFAULT_SEEDS)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.criteria = list(CRITERIA) if args.criterion == "both" else [args.criterion]
    grids = GRIDS["quick" if args.quick else "full"]

    start = time.perf_counter()
    rows, info = [], {}
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for name in args.datasets:
            for seed in range(args.seeds):
                new, fits, sizes = run_dataset(DATASETS[name], seed, args, grids)
                rows += new
                if seed == 0:
                    info[name] = (*sizes, fits)
    table = aggregate(rows)
    settings = [
        (name, kind, DATASETS[name].task)
        for name in args.datasets
        for kind in KINDS
        if kind not in SKIPPED.get(DATASETS[name].task, {})
    ]
    text = markdown(table, settings, info, args, grids, time.perf_counter() - start)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "compare.md").write_text(text + "\n")
    figure(table, settings, args.criteria[0], args.output_dir / "compare.png")
    print(text)
    print(f"\nwritten to {args.output_dir / 'compare.md'} and compare.png")
    return table


if __name__ == "__main__":
    main()
