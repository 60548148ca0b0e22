"""
=====================================================================
Choosing ε with the similarity ratio γ (multi-output, paper Fig. 2)
=====================================================================

A multi-attribute binary classifier (one
:class:`~sklearn_ssse.ErasableLogisticRegression` per attribute, as in the paper's
CelebA experiment) forgets every row of a group, or half of them. The group is
marked by an attribute the model does not predict (think "every photo of one
cohort"), so each predicted attribute still varies inside the forgotten rows.

For each step scale ε we measure the similarity ratio γ on the forgotten rows
(1: the updated model ranks them exactly like the refit, 0: like the original)
and the relative parameter distance ‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖. The Fisher
update (SSSE) needs a tuned ε; the influence (Hessian) update is drawn for
comparison (its theoretical value is ε = 1). Curves are averaged over three groups.

Each curve costs one ``partial_forget``:
:func:`~sklearn_ssse.model_selection.forget_scale_curve` scores the whole grid from
one computation of the step. The same search written
with ``GridSearchCV`` gives the same best ε (checked below).
"""

# %%
# Data: synthetic multilabel data; the first labels mark the groups to forget.
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.multioutput import MultiOutputClassifier
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.model_selection import (
    ForgetStep,
    forget_scale_curve,
    make_erasure_scorer,
)
from sklearn_ssse.multioutput import ErasableMultiOutputClassifier

start = time.perf_counter()
n_groups = 3
X, labels = make_multilabel_classification(
    n_samples=500, n_features=20, n_classes=6 + n_groups, n_labels=2, random_state=0
)
X = StandardScaler().fit_transform(X)
groups, Y = labels[:, :n_groups].astype(bool), labels[:, n_groups:]
print(f"{X.shape[0]} rows, {Y.shape[1]} outputs, group sizes {groups.sum(0)}")

# %%
# The two fitted models: Fisher (SSSE) and Hessian (influence update).
models = {
    kind: ErasableMultiOutputClassifier(ErasableLogisticRegression(curvature=kind)).fit(
        X, Y
    )
    for kind in ("fisher", "hessian")
}
scales = np.logspace(-2, 2, 33)
rng = np.random.default_rng(0)
gamma = {}
distance = {}
for g in range(n_groups):
    for fraction in (1.0, 0.5):
        S = groups[:, g] & (rng.random(len(X)) < fraction)
        # The one refit reference (any classifier with predict_proba and coef_).
        refit = MultiOutputClassifier(LogisticRegression()).fit(X[~S], Y[~S])
        for kind, model in models.items():
            curve = forget_scale_curve(
                model,
                X[S],
                Y[S],
                refit_estimator=refit,
                forget_scales=scales,
                scoring=["similarity_ratio", "neg_relative_parameter_distance"],
            )
            key = (kind, fraction)
            gamma.setdefault(key, []).append(curve.scores["similarity_ratio"])
            distance.setdefault(key, []).append(
                -curve.scores["neg_relative_parameter_distance"]
            )

# %%
# The idiomatic search for one calibration deletion gives the same best ε.
idx = np.arange(S.sum())
search = GridSearchCV(
    ForgetStep(models["fisher"]),
    {"forget_scale": scales},
    scoring=make_erasure_scorer("similarity_ratio", refit_estimator=refit),
    cv=[(idx, idx)],  # forget all of S, score on S
).fit(X[S], Y[S])
fast = forget_scale_curve(
    models["fisher"], X[S], Y[S], refit_estimator=refit, forget_scales=scales
)
print(
    f"GridSearchCV: ε = {search.best_params_['forget_scale']:.3g}, "
    f"γ = {search.best_score_:.3f}; fast path: ε = {fast.best_forget_scale:.3g}, "
    f"γ = {fast.best_score:.3f}"
)
assert search.best_params_["forget_scale"] == fast.best_forget_scale

# %%
# Figure: γ and the parameter distance against ε, averaged over the groups.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
colors = {1.0: "tab:blue", 0.5: "tab:orange"}
styles = {"fisher": "-", "hessian": "--"}
names = {"fisher": "SSSE (Fisher)", "hessian": "influence (Hessian)"}
for (kind, fraction), curves in gamma.items():
    mean = np.mean(curves, axis=0)
    label = f"{names[kind]}, {fraction:.0%} removed"
    axes[0].plot(scales, mean, styles[kind], color=colors[fraction], label=label)
    best = np.argmax(mean)
    axes[0].plot(scales[best], mean[best], "o", color=colors[fraction])
    print(f"{label:38s} max γ = {mean[best]:.3f} at ε = {scales[best]:.3g}")
    dist = np.mean(distance[(kind, fraction)], axis=0)
    axes[1].plot(scales, dist, styles[kind], color=colors[fraction], label=label)
    axes[1].plot(scales[np.argmin(dist)], dist.min(), "o", color=colors[fraction])
axes[0].axhline(0.5, color="grey", lw=0.8)
axes[0].set(
    xscale="log",
    xlabel="step scale ε (forget_scale)",
    ylabel="similarity ratio γ on S (↑)",
    title="(a) similarity ratio",
    ylim=(0, 1),
)
axes[1].axhline(1.0, color="grey", lw=0.8)
axes[1].set(
    xscale="log",
    xlabel="step scale ε (forget_scale)",
    ylabel="‖θ̂ − θ_refit‖ / ‖θ* − θ_refit‖ (↓)",
    title="(b) relative parameter distance",
    ylim=(0, 2),
)
axes[0].legend(fontsize=8, loc="lower left")
fig.suptitle(f"Multi-output binary: forgetting a group ({Y.shape[1]} outputs)")
fig.tight_layout()
here = Path(__file__).parent if "__file__" in globals() else Path.cwd()
out = here.resolve() / "figures" / "similarity_ratio.png"
out.parent.mkdir(exist_ok=True)
fig.savefig(out, dpi=110)
print(f"saved {out.name} in {time.perf_counter() - start:.1f} s")
