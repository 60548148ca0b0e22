"""
=====================================================================
Decision boundaries after forgetting rows (paper Fig. 1)
=====================================================================

A binary logistic regression on a 2-D problem forgets (a) one training row and
(b) a group of rows. The boundaries of six models are compared: the original,
the refit without the rows (the gold standard), the influence update (Hessian
curvature, ε = 1 as the theory says) and the SSSE update (empirical Fisher
curvature, tuned ε), each with the curvature of all training rows ("full",
``leave_out=False``) or with the forgotten rows taken out ("LKO",
``leave_out=True``, the library's default).

The Fisher's ε is chosen once, on the group deletion (b) used as the calibration
deletion with its one refit, by the relative parameter distance to the refit,
and reused for the single-row deletion (a): ε is a property of the curvature,
not of the request (paper §4).
"""

# %%
import copy
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.metrics import relative_parameter_distance
from sklearn_ssse.model_selection import forget_scale_curve

start = time.perf_counter()
X, y = make_blobs(
    n_samples=[20, 20], centers=[[-1.5, 0], [1.5, 0]], cluster_std=1.0, random_state=3
)
models = {
    kind: ErasableLogisticRegression(curvature=kind).fit(X, y)
    for kind in ("fisher", "hessian")
}
original = models["hessian"]

# (a) the row the original model fits worst; (b) six rows of class 1 at the top.
p_true = original.predict_proba(X)[np.arange(len(y)), y]
single = np.arange(len(y)) == np.argmin(p_true)
top = np.where(y == 1, np.linalg.norm(X - [0.5, 1.5], axis=1), np.inf)
group = np.isin(np.arange(len(y)), np.argsort(top)[:6])
refits = {
    name: LogisticRegression().fit(X[~S], y[~S])
    for name, S in (("single", single), ("group", group))
}

# %%
# Choose the Fisher's ε on the group deletion, for each variant, in one pass each.
scales = np.logspace(-2, 1, 31)
fisher_scale = {}
for leave_out in (False, True):
    curve = forget_scale_curve(
        models["fisher"],
        X[group],
        y[group],
        refit_estimator=refits["group"],
        forget_scales=scales,
        scoring="neg_relative_parameter_distance",
        leave_out=leave_out,
    )
    fisher_scale[leave_out] = curve.best_forget_scale
    print(f"Fisher, leave_out={leave_out}: ε = {curve.best_forget_scale:.3g}")

variants = {
    "influence (full Hessian)": ("hessian", False, 1.0),
    "influence (LKO Hessian)": ("hessian", True, 1.0),
    "SSSE (full Fisher)": ("fisher", False, fisher_scale[False]),
    "SSSE (LKO Fisher)": ("fisher", True, fisher_scale[True]),
}
styles = {
    "original": dict(color="black", lw=1.5),
    "retrained": dict(color="black", lw=2.5, ls=":"),
    "influence (full Hessian)": dict(color="tab:green", lw=1.5),
    "influence (LKO Hessian)": dict(color="tab:green", lw=1.5, ls="--"),
    "SSSE (full Fisher)": dict(color="tab:red", lw=1.5),
    "SSSE (LKO Fisher)": dict(color="tab:red", lw=1.5, ls="--"),
}

# %%
# Figure: the boundaries θᵀx + b = 0 of every model.
fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharey=True)
x1 = np.array([-2.5, 2.5])
x2_lim = (X[:, 1].min() - 0.5, X[:, 1].max() + 0.5)
for ax, (name, S), title in zip(
    axes,
    (("single", single), ("group", group)),
    ("(a) after removing a single sample", "(b) after removing multiple samples"),
):
    fitted = {"original": original, "retrained": refits[name]}
    for label, (kind, leave_out, scale) in variants.items():
        fitted[label] = copy.deepcopy(models[kind]).set_params(
            leave_out=leave_out, forget_scale=scale
        )
        fitted[label].partial_forget(X[S], y[S])
    print(f"{title}: distance to the retrained model, relative to the original's")
    for label, model in fitted.items():
        (w1, w2), b = model.coef_[0], model.intercept_[0]
        # The boundary as x2 = f(x1): w1 x1 + w2 x2 + b = 0 (w2 ≠ 0 here).
        ax.plot(x1, -(b + w1 * x1) / w2, label=label, **styles[label])
        if label not in ("original", "retrained"):
            d = relative_parameter_distance(
                model, original=original, refit=refits[name]
            )
            print(f"    {label:26s} {d:.3f}")
    ax.scatter(*X[y == 0].T, s=14, color="tab:blue", label="class 0")
    ax.scatter(*X[y == 1].T, s=14, color="tab:orange", label="class 1")
    ax.scatter(
        *X[S].T, s=220, facecolor="tab:blue", alpha=0.3, edgecolor="none",
        label="removed",
    )  # fmt: skip
    ax.set(title=title, xlabel="x1", ylim=x2_lim, xlim=(x1[0], x1[1]))
axes[0].set_ylabel("x2")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9)
fig.tight_layout(rect=(0, 0.1, 1, 1))
here = Path(__file__).parent if "__file__" in globals() else Path.cwd()
out = here.resolve() / "figures" / "decision_boundary.png"
out.parent.mkdir(exist_ok=True)
fig.savefig(out, dpi=110)
print(f"saved {out.name} in {time.perf_counter() - start:.1f} s")
