"""
=====================================================================
Erasing a digit from a neural network (paper §5.3, Figures 3b, 5, 6)
=====================================================================

SSSE is not limited to convex models. An :class:`ErasableMLPClassifier` (a drop-in
``MLPClassifier``) stores the inverse of a per-layer block-diagonal empirical Fisher
at its fitted weights; ``partial_forget`` then erases training rows in one step
``θ + ε M⁻¹ Σ_{i∈S} ∇ℓ_i``, with exact per-sample gradients by backpropagation.

We erase all or half of the training rows of one digit, for digits 0–4, and compare
with a refit from the same ``random_state`` (the gold standard) and with one
gradient-ascent step (``sklearn_ssse.baselines.gradient_ascent_update``), the paper's
non-convex baseline:

- (a), (b): the normalized confusion distance δ on the forgotten rows (0: they are
  classified exactly as the refit classifies them; lower is better) against ε for
  SSSE and against the learning rate for gradient ascent;
- (c), (d): for half a digit removed, the absolute gap in accuracy to the refit on
  the four splits (remaining training rows, forgotten rows, test rows of the other
  digits, test rows of the erased digit), as in the paper's Figures 5 and 6.

What shows up, as in the paper: removing a whole class is the easy case (the model
stops predicting a vanished class, so the step only decides where its rows go);
removing half of it is harder, and too large an ε erases the rest of the class as
well. The script ends by choosing ε once on a calibration deletion (with its one
refit) and reusing it for another request, the paper's premise.

Run time: under a minute on two cores (``OPENBLAS_NUM_THREADS=1`` helps: the
products are small).
"""

# %%
import copy
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from sklearn_ssse.baselines import gradient_ascent_update
from sklearn_ssse.metrics import erasure_report, normalized_confusion_distance
from sklearn_ssse.model_selection import forget_scale_curve
from sklearn_ssse.neural_network import ErasableMLPClassifier

warnings.simplefilter("ignore", ConvergenceWarning)
start = time.perf_counter()
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.25, stratify=y, random_state=0
)

# %%
# The network: one hidden layer of 32 ReLU units, L-BFGS, L2 strength alpha=1. The
# stored curvature has one dense block per layer (block_size="class").
model = ErasableMLPClassifier(
    hidden_layer_sizes=(32,),
    curvature="fisher",  # the paper's step (the default is Gauss–Newton)
    solver="lbfgs",
    alpha=1.0,
    max_iter=400,
    random_state=0,
    block_size="class",
).fit(X_train, y_train)
blocks = [stop - start for start, stop in model.curvature_inverse_.bounds]
print(
    f"test accuracy {model.score(X_test, y_test):.3f}; Fisher blocks of {blocks} "
    f"coordinates ({model.curvature_inverse_.nbytes / 2**20:.0f} MiB)"
)

# %%
# One refit per deletion; every ε and every learning rate on a copy of the model.
scales = np.logspace(-2, np.log10(3), 13)
rates = np.logspace(-3, np.log10(0.5), 13)
SPLITS = ["D∖S", "S", "T∖Tₐ", "Tₐ"]


def scores(candidate, refit_pred, original_pred, splits):
    X_S, y_S = splits["S"]
    delta = normalized_confusion_distance(
        y_S,
        candidate.predict(X_S),
        y_pred_original=original_pred,
        y_pred_refit=refit_pred,
        labels=model.classes_,
        zero_division=0.5,
    )
    accuracy = [np.mean(candidate.predict(Xs) == ys) for Xs, ys in splits.values()]
    return delta, np.array(accuracy)


results = {}
deletions = {}
rng = np.random.default_rng(0)
for digit in range(5):
    for fraction in (1.0, 0.5):
        rows = np.flatnonzero(y_train == digit)
        S = np.sort(rng.permutation(rows)[: round(fraction * len(rows))])
        keep = np.setdiff1d(np.arange(len(y_train)), S)
        splits = {
            "D∖S": (X_train[keep], y_train[keep]),
            "S": (X_train[S], y_train[S]),
            "T∖Tₐ": (X_test[y_test != digit], y_test[y_test != digit]),
            "Tₐ": (X_test[y_test == digit], y_test[y_test == digit]),
        }
        refit = clone(model).fit(X_train[keep], y_train[keep])
        deletions[digit, fraction] = S, refit
        refit_pred, original_pred = refit.predict(X_train[S]), model.predict(X_train[S])
        _, refit_accuracy = scores(refit, refit_pred, original_pred, splits)
        for eps in scales:
            updated = copy.deepcopy(model).set_params(forget_scale=eps)
            updated.partial_forget(X_train[S], y_train[S])
            delta, accuracy = scores(updated, refit_pred, original_pred, splits)
            results.setdefault(("SSSE", fraction), []).append(
                (delta, np.abs(accuracy - refit_accuracy))
            )
        for lr in rates:
            ascended = gradient_ascent_update(
                model, X_train[S], y_train[S], learning_rate=lr
            )
            delta, accuracy = scores(ascended, refit_pred, original_pred, splits)
            results.setdefault(("GA", fraction), []).append(
                (delta, np.abs(accuracy - refit_accuracy))
            )


def curves(method, fraction):
    """δ and |Δ accuracy| as arrays (n_digits, n_grid) and (n_digits, n_grid, 4)."""
    n_grid = len(scales) if method == "SSSE" else len(rates)
    deltas, gaps = zip(*results[method, fraction], strict=True)
    return (
        np.reshape(deltas, (-1, n_grid)),
        np.reshape(gaps, (-1, n_grid, len(SPLITS))),
    )


# %%
# Figure: (a) SSSE's δ against ε, (b) gradient ascent's δ against its learning rate,
# (c), (d) their accuracy gaps to the refit on the four splits, half a digit removed.
fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
colors = {1.0: "tab:blue", 0.5: "tab:orange"}
for ax, method, grid, xlabel in (
    (axes[0], "SSSE", scales, "step scale ε (forget_scale)"),
    (axes[1], "GA", rates, "learning rate of the gradient-ascent step"),
):
    for fraction in (1.0, 0.5):
        delta, _ = curves(method, fraction)
        mean, std = delta.mean(axis=0), delta.std(axis=0)
        best = np.argmin(mean)
        label = f"{fraction:.0%} of a digit removed"
        ax.plot(grid, mean, color=colors[fraction], label=label)
        ax.fill_between(
            grid, mean - std, mean + std, color=colors[fraction], alpha=0.15
        )
        ax.plot(grid[best], mean[best], "o", color=colors[fraction])
        print(f"{method:4s} {label:26s} min δ = {mean[best]:.3f} at {grid[best]:.3g}")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set(xscale="log", xlabel=xlabel, ylim=(0, 1.02))
axes[0].set(ylabel="normalized confusion distance δ on S (↓)", title="(a) SSSE")
axes[1].set(title="(b) gradient ascent")
axes[0].legend(fontsize=8)
for ax, method, grid, xlabel in (
    (axes[2], "SSSE", scales, "step scale ε (forget_scale)"),
    (axes[3], "GA", rates, "learning rate of the gradient-ascent step"),
):
    _, gaps = curves(method, 0.5)
    for j, split in enumerate(SPLITS):
        ax.plot(grid, gaps[:, :, j].mean(axis=0), label=split)
    ax.set(xscale="log", xlabel=xlabel, ylim=(-0.02, 1.02))
axes[2].set(
    ylabel="|accuracy − refit's accuracy|", title="(c) SSSE, 50 % of a digit removed"
)
axes[3].set(title="(d) gradient ascent, 50 % removed")
axes[2].legend(fontsize=8)
fig.suptitle("ErasableMLPClassifier on digits: erasing one digit (means over 0–4)")
fig.tight_layout()
here = Path(__file__).parent if "__file__" in globals() else Path.cwd()
out = here.resolve() / "figures" / "mlp_erasure.png"
out.parent.mkdir(exist_ok=True)
fig.savefig(out, dpi=110)

# %%
# Choose ε once, on a calibration deletion with its one refit (all of digit 0), and
# reuse it for a new request (all of digit 7): the request itself needs no refit; we
# fit one here only to report how close the update came. (Full and partial removals
# want different ε, as panel (a) shows: calibrate on the kind of request you serve.)
S, refit = deletions[0, 1.0]
curve = forget_scale_curve(
    model,
    X_train[S],
    y_train[S],
    refit_estimator=refit,
    forget_scales=scales,
    scoring="neg_normalized_confusion_distance",
    zero_division=0.5,
)
print(f"calibrated on digit 0: {curve}")
model.set_params(forget_scale=curve.best_forget_scale)
S = y_train == 7
updated = copy.deepcopy(model).partial_forget(X_train[S], y_train[S])
report = erasure_report(
    updated,
    X_train[S],
    y_train[S],
    original=model,
    refit=clone(model).fit(X_train[~S], y_train[~S]),
    X_remaining=X_train[~S],
    y_remaining=y_train[~S],
    X_test=X_test,
    y_test=y_test,
    test_erased=y_test == 7,
)
print(report)
print(f"saved {out.name} in {time.perf_counter() - start:.1f} s")
