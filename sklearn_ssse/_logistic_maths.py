"""Gradients and curvature of binary and multinomial logistic regression.

Parameters are flattened row by row from the ``(n_outputs, width)`` matrix
``[coef_ | intercept_ / intercept_scaling]`` (``n_outputs`` is 1 for a binary model,
the number of classes for a multinomial one); ``x̃ = [x, intercept_scaling]``.

- Binary: ``p = σ(θᵀx̃)``, ``r = p − y``, ``g = r·x̃``; Hessian ``p(1−p)·x̃x̃ᵀ``,
  Fisher ``r²·x̃x̃ᵀ``.
- Multinomial: ``r = p − onehot(y)``, ``g = r ⊗ x̃``; Hessian ``(diag p − ppᵀ) ⊗ x̃x̃ᵀ``,
  Fisher ``rrᵀ ⊗ x̃x̃ᵀ``.

Block ``(a, b)`` of either matrix is ``X̃ᵀ diag(v_ab) X̃``: one weighted GEMM (a SYRK on
the diagonal) per pair of output rows, over chunks of rows, so nothing of size
``n × n_params`` is ever formed.
"""

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, softmax

from ._maths import ModelMaths, row_chunks

__all__ = ["LogisticMaths"]


class LogisticMaths(ModelMaths):
    """Maths of an L2-penalised logistic regression (see the module docstring).

    Parameters
    ----------
    n_features : int
        Number of input features ``m``.
    n_classes : int
        Number of classes (2: binary model with one output row).
    fit_intercept : bool
        Whether ``x̃`` carries the intercept column.
    intercept_scaling : float, default=1.0
        Value of the intercept column (liblinear's synthetic feature).
    """

    kinds = ("fisher", "hessian")

    def __init__(self, n_features, n_classes, fit_intercept, intercept_scaling=1.0):
        self.n_features = n_features
        self.n_classes = n_classes
        self.fit_intercept = fit_intercept
        self.intercept_scaling = float(intercept_scaling)
        self.n_outputs = 1 if n_classes == 2 else n_classes
        self.width = n_features + int(fit_intercept)
        self.n_params = self.n_outputs * self.width

    # -- parameters --------------------------------------------------------------
    def group_bounds(self):
        return [(a * self.width, (a + 1) * self.width) for a in range(self.n_outputs)]

    def coef_mask(self):
        """Boolean mask of the coordinates that are ``coef_`` (not intercept)."""
        mask = np.ones((self.n_outputs, self.width), dtype=bool)
        if self.fit_intercept:
            mask[:, -1] = False
        return mask.ravel()

    def null_directions(self):
        if self.n_outputs == 1 or not self.fit_intercept:
            return super().null_directions()
        direction = np.zeros((self.n_outputs, self.width))
        direction[:, -1] = 1 / np.sqrt(self.n_outputs)
        return direction.reshape(-1, 1)

    def pack(self, coef, intercept):
        """Flat parameter vector from scikit-learn's ``coef_`` and ``intercept_``."""
        if not self.fit_intercept:
            return np.array(coef, copy=True).ravel()
        column = np.asarray(intercept)[:, None] / self.intercept_scaling
        return np.hstack([coef, column.astype(coef.dtype)]).ravel()

    def unpack(self, theta):
        """``(coef_, intercept_)`` from a flat parameter vector."""
        Theta = theta.reshape(self.n_outputs, self.width)
        if not self.fit_intercept:
            return Theta.copy(), np.zeros(self.n_outputs, dtype=theta.dtype)
        intercept = Theta[:, -1] * theta.dtype.type(self.intercept_scaling)
        return Theta[:, :-1].copy(), intercept.copy()

    # -- per-chunk quantities ----------------------------------------------------
    def _augment(self, X):
        if not self.fit_intercept:
            return X
        column = np.full((X.shape[0], 1), self.intercept_scaling, dtype=X.dtype)
        if sp.issparse(X):
            return sp.hstack([X, sp.csr_matrix(column)], format="csr")
        return np.hstack([X, column])

    def _residuals(self, Xt, y, Theta, active):
        """Probabilities ``p`` and residuals ``r = p − y``, each (n, n_outputs)."""
        Z = Xt @ Theta.T
        Z = np.asarray(Z)
        if self.n_outputs == 1:
            p = expit(Z)
            target = (y == 1)[:, None]
        else:
            if not np.all(active):
                Z[:, ~active] = -np.inf
            p = softmax(Z, axis=1)
            target = np.zeros_like(p, dtype=bool)
            target[np.arange(len(y)), y] = True
        return p, p - target

    def _pair_weights(self, p, r, kind, a, b):
        """Per-row weight ``v_ab`` of block ``(a, b)``: ``K_i[a, b]``."""
        if kind == "fisher":
            return r[:, a] * r[:, b]
        if a == b:
            return p[:, a] * (1 - p[:, a])
        return -p[:, a] * p[:, b]

    def gradient_rows(self, X, y, theta, active):
        Xt = self._augment(X)
        Theta = theta.reshape(self.n_outputs, self.width)
        _, r = self._residuals(Xt, y, Theta, active)
        Xd = Xt.toarray() if sp.issparse(Xt) else Xt
        return (r[:, :, None] * Xd[:, None, :]).reshape(len(y), -1)

    def factor_rank(self, kind):
        return 1 if kind == "fisher" or self.n_outputs == 1 else self.n_outputs

    def factor_rows(self, X, y, theta, active, kind):
        if kind == "fisher":
            return self.gradient_rows(X, y, theta, active)[:, None, :]
        Xt = self._augment(X)
        Theta = theta.reshape(self.n_outputs, self.width)
        p, _ = self._residuals(Xt, y, Theta, active)
        Xd = Xt.toarray() if sp.issparse(Xt) else Xt
        if self.n_outputs == 1:
            L = np.sqrt(p * (1 - p))[:, :, None]  # (n, 1, q=1)
        else:
            # diag(p) − ppᵀ = L Lᵀ with L = diag(√p) − p √pᵀ (uses Σ p = 1).
            sqrt_p = np.sqrt(p)
            L = -p[:, :, None] * sqrt_p[:, None, :]
            L[:, np.arange(p.shape[1]), np.arange(p.shape[1])] += sqrt_p
        # factor[i, q, a, :] = L[i, a, q] · x̃_i
        rows = L.transpose(0, 2, 1)[:, :, :, None] * Xd[:, None, None, :]
        return rows.reshape(len(y), L.shape[2], -1)

    # -- sums over the training set ----------------------------------------------
    def gradient_sums(self, X, y, weights, theta, active, n_classes):
        Theta = theta.reshape(self.n_outputs, self.width)
        out = np.zeros((n_classes, self.n_outputs, self.width), dtype=theta.dtype)
        row_bytes = 3 * X.dtype.itemsize * (self.width + self.n_outputs)
        for rows in row_chunks(X.shape[0], row_bytes):
            Xt = self._augment(X[rows])
            _, r = self._residuals(Xt, y[rows], Theta, active)
            r *= weights[rows, None]
            for a in range(n_classes):
                mask = y[rows] == a
                if np.any(mask):
                    out[a] += np.asarray((Xt[mask].T @ r[mask]).T)
        return out.reshape(n_classes, -1)

    def curvature_blocks(
        self,
        X,
        y,
        weights,
        theta,
        active,
        kind,
        bounds,
        batch_size=1,
        random_state=None,
    ):
        if batch_size > 1:
            if kind != "fisher":
                raise ValueError("fisher_batch_size > 1 applies to the Fisher only")
            return super().curvature_blocks(
                X, y, weights, theta, active, kind, bounds, batch_size, random_state
            )
        Theta = theta.reshape(self.n_outputs, self.width)
        blocks = [np.zeros((e - s, e - s), dtype=theta.dtype) for s, e in bounds]
        segments = [self._segments(s, e) for s, e in bounds]
        row_bytes = 4 * X.dtype.itemsize * (self.width + self.n_outputs)
        for rows in row_chunks(X.shape[0], row_bytes):
            Xt = self._augment(X[rows])
            p, r = self._residuals(Xt, y[rows], Theta, active)
            w = weights[rows]
            for block, segs in zip(blocks, segments):
                self._add_block(block, segs, Xt, p, r, w, kind)
        return blocks

    def _segments(self, start, stop):
        """Pieces ``(output row, first column, stop column, offset)`` of a block."""
        segs = []
        for a in range(start // self.width, (stop - 1) // self.width + 1):
            lo = max(start, a * self.width) - a * self.width
            hi = min(stop, (a + 1) * self.width) - a * self.width
            segs.append((a, lo, hi, a * self.width + lo - start))
        return segs

    def _add_block(self, block, segs, Xt, p, r, w, kind):
        sparse = sp.issparse(Xt)
        for i, (a, lo_a, hi_a, off_a) in enumerate(segs):
            A = Xt[:, lo_a:hi_a]
            for b, lo_b, hi_b, off_b in segs[i:]:
                v = w * self._pair_weights(p, r, kind, a, b)
                B = Xt[:, lo_b:hi_b]
                if sparse:
                    part = (A.T @ (sp.diags(v) @ B)).toarray()
                elif a == b and np.all(v >= 0):
                    Y = A * np.sqrt(v)[:, None]
                    part = Y.T @ Y  # SYRK
                else:
                    part = A.T @ (B * v[:, None])
                rows_, cols_ = (
                    slice(off_a, off_a + hi_a - lo_a),
                    slice(off_b, off_b + hi_b - lo_b),
                )
                block[rows_, cols_] += part
                if a != b:
                    block[cols_, rows_] += part.T
