"""
===========================================================
The certificate of every request, next to the true residual
===========================================================

Every ``partial_forget`` of an :class:`~sklearn_ssse.ErasableLogisticRegression`
records a data-free certificate: a rigorous upper bound on the gradient of the
remaining objective at the updated parameters, carried over the sequence of
requests (``docs/certificate.md``). Here 50 requests of 1 % of the rows each are
made on breast_cancer; after each we also compute the true residual with the
remaining rows (:func:`~sklearn_ssse.certificate.verify_erasure`, one pass over
the data, no refit).

Left: the certified bound and the true residual (log scale); the bound is never
below it; it is 100–5 000× above it for the Hessian step. Right: the bound relative
to what ignoring the requests would leave, against the default
``certificate_budget``; the Fisher step at ε = 1 overshoots and its bound grows
faster.
"""

# %%
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from sklearn_ssse import ErasableLogisticRegression
from sklearn_ssse.certificate import erasure_audit, verify_erasure

X, y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)
order = np.random.default_rng(0).permutation(len(y))
size = len(y) // 100

# %%
# Fifty requests per curvature; the record holds the certified bounds.
curves = {}
for curvature in ("hessian", "fisher"):
    model = ErasableLogisticRegression(curvature=curvature, max_iter=1000)
    model.set_params(certificate_budget=None).fit(X, y)
    alive = np.ones(len(y), dtype=bool)
    true = []
    for r in range(50):
        rows = order[r * size : (r + 1) * size]
        model.partial_forget(X[rows], y[rows])
        alive[rows] = False
        true.append(verify_erasure(model, X[alive], y[alive]).gradient_norm)
    log = erasure_audit(model)
    curves[curvature] = (
        np.array([row["certificate_cumulative_gradient_bound"] for row in log]),
        np.array(true),
        np.array([row["certificate_relative_gradient_bound"] for row in log]),
    )
    assert np.all(curves[curvature][0] >= curves[curvature][1])

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
requests = np.arange(1, 51)
for (curvature, (bound, true, relative)), color in zip(curves.items(), "C0 C1".split()):
    left.semilogy(requests, bound, color=color, label=f"{curvature}: certified")
    left.semilogy(requests, true, color=color, ls="--", label=f"{curvature}: true")
    right.semilogy(requests, relative, color=color, label=curvature)
budget = ErasableLogisticRegression().certificate_budget
right.axhline(budget, color="k", ls=":", label="default certificate_budget")
left.set(xlabel="request", ylabel="‖∇J_rem‖ at the updated parameters")
left.set_title("Certified bound vs true residual")
right.set(xlabel="request", ylabel="certified / ignoring the requests")
right.set_title("What the budget is compared with")
left.legend(fontsize=8)
right.legend(fontsize=8)
fig.tight_layout()
# sphinx-gallery runs the example without ``__file__``: then the working directory
here = Path(__file__).parent if "__file__" in globals() else Path.cwd()
out = here.resolve() / "figures" / "certificate.png"
out.parent.mkdir(exist_ok=True)
fig.savefig(out, dpi=100)
print(f"saved {out}")
for curvature, (bound, true, _) in curves.items():
    print(
        f"{curvature}: certified / true from {np.min(bound / true):.0f} "
        f"to {np.max(bound / true):.0f}"
    )
