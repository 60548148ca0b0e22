"""Per-sample gradients of a multi-layer perceptron's log-loss, by backpropagation.

The network is scikit-learn's :class:`~sklearn.neural_network.MLPClassifier`: layers
``a₀ = x``, ``z_{l+1} = a_l W_l + b_l``, ``a_{l+1} = f(z_{l+1})`` with the hidden
activation ``f`` (identity, logistic, tanh or relu), and an output layer that is one
logistic unit (binary) or a softmax over the classes (multiclass). The data loss of a
row is the log-loss ``ℓ_i = −log p(y_i | x_i)``.

Flat parameter order, layer by layer, each layer contiguous::

    θ = [W₀.ravel(), b₀, W₁.ravel(), b₁, …, W_{L−1}.ravel(), b_{L−1}]

``W_l`` is ``coefs_[l]`` of shape ``(fan_in, fan_out)`` raveled in C order, ``b_l`` is
``intercepts_[l]``. (scikit-learn's own L-BFGS packing puts every ``W`` before every
``b``; ours keeps a layer together so that ``block_size="class"`` gives one curvature
block per layer.)

Backpropagation of one chunk of rows, with ``δ_L = p − onehot(y)`` at the output::

    ∇_{W_l} ℓ_i = a_l[i] ⊗ δ_{l+1}[i],   ∇_{b_l} ℓ_i = δ_{l+1}[i],
    δ_l = (δ_{l+1} W_lᵀ) ⊙ f′(a_l)

all in vectorised numpy over the chunk; only the layers are looped over. The generic
:meth:`ModelMaths.curvature_blocks` (empirical Fisher from level-3 products over row
chunks, optional mini-batches) and :meth:`ModelMaths.gradient_sums` work on these rows
unchanged.
"""

from itertools import pairwise

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_softmax, softmax
from sklearn.neural_network._base import ACTIVATIONS, DERIVATIVES

from ._linalg import accumulate_gram, symmetrize_from_lower
from ._maths import ModelMaths, row_chunks

__all__ = ["MLPMaths"]


# Small blocks are accumulated in groups of about this many columns (one batched
# product per group instead of one SYRK per block).
_GROUP_COLUMNS = 1024


def _block_groups(bounds, columns):
    """Consecutive runs of equal-size blocks spanning at most ``columns``."""
    groups, current = [], []
    for index, (s, e) in enumerate(bounds):
        size = e - s
        if current:
            first = bounds[current[0]]
            if size == first[1] - first[0] and e - first[0] <= columns:
                current.append(index)
                continue
            groups.append(current)
        current = [index]
    if current:
        groups.append(current)
    return groups


class MLPMaths(ModelMaths):
    """Maths of a fitted MLPClassifier network (see the module docstring).

    Parameters
    ----------
    layer_units : list of int
        ``[n_features, *hidden_layer_sizes, n_outputs]``; ``n_outputs`` is 1 for a
        binary model (one logistic unit) and the number of classes otherwise.
    activation : {"identity", "logistic", "tanh", "relu"}
        The hidden layers' activation.

    Attributes
    ----------
    n_params : int
        Number of parameter coordinates.
    layer_slices : list of (int, int, int)
        ``(start, stop of W_l, stop of b_l)`` of each layer in the flat vector.
    """

    def __init__(self, layer_units, activation):
        self.layer_units = [int(u) for u in layer_units]
        self.activation = activation
        self.n_outputs = self.layer_units[-1]
        self.layer_slices = []
        start = 0
        for fan_in, fan_out in pairwise(self.layer_units):
            w_stop = start + fan_in * fan_out
            self.layer_slices.append((start, w_stop, w_stop + fan_out))
            start = w_stop + fan_out
        self.n_params = start

    # -- parameters --------------------------------------------------------------
    def group_bounds(self):
        """One group per layer: ``[W_l, b_l]``."""
        return [(start, b_stop) for start, _, b_stop in self.layer_slices]

    def weight_mask(self):
        """Boolean mask of the coordinates that are weights (not intercepts)."""
        mask = np.zeros(self.n_params, dtype=bool)
        for start, w_stop, _ in self.layer_slices:
            mask[start:w_stop] = True
        return mask

    def null_directions(self):
        """The softmax's flat direction: the same shift of every output intercept.

        A binary (logistic) output has none. Shape ``(n_params, r)``, ``r`` ≤ 1.
        """
        if self.n_outputs == 1:
            return super().null_directions()
        direction = np.zeros((self.n_params, 1))
        _, w_stop, b_stop = self.layer_slices[-1]
        direction[w_stop:b_stop] = 1 / np.sqrt(self.n_outputs)
        return direction

    def pack(self, coefs, intercepts):
        """Flat parameter vector from ``coefs_`` and ``intercepts_``."""
        parts = []
        for W, b in zip(coefs, intercepts):
            parts += [np.ravel(W), np.ravel(b)]
        return np.concatenate(parts)

    def unpack(self, theta):
        """``(coefs_, intercepts_)`` lists (new arrays) from a flat vector."""
        coefs, intercepts = [], []
        for (start, w_stop, b_stop), (fan_in, fan_out) in zip(
            self.layer_slices, pairwise(self.layer_units)
        ):
            coefs.append(theta[start:w_stop].reshape(fan_in, fan_out).copy())
            intercepts.append(theta[w_stop:b_stop].copy())
        return coefs, intercepts

    def _views(self, theta):
        """Read-only ``(W_l, b_l)`` views of ``theta``."""
        return [
            (theta[s:w].reshape(fan_in, fan_out), theta[w:b])
            for (s, w, b), (fan_in, fan_out) in zip(
                self.layer_slices, pairwise(self.layer_units)
            )
        ]

    # -- forward and backward ----------------------------------------------------
    def forward(self, X, theta, active=None):
        """Activations of every layer; the last one holds the probabilities.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n, n_features)
        theta : ndarray of shape (n_params,)
        active : ndarray of bool of shape (n_classes,) or None
            Classes still present; an inactive class of a multiclass model gets
            probability zero (its logit is ``-inf``). A binary model ignores it.

        Returns
        -------
        list of ndarray
            ``[a₀, a₁, …, p]``; ``a₀`` is ``X`` itself. ``p`` has shape
            ``(n, n_outputs)``.
        """
        layers = self._views(theta)
        activations = [X]
        hidden = ACTIVATIONS[self.activation]
        A = X
        for i, (W, b) in enumerate(layers):
            Z = A @ W
            Z = np.asarray(Z)
            Z += b
            if i < len(layers) - 1:
                hidden(Z)
            A = Z
            activations.append(A)
        logits = activations[-1]
        if self.n_outputs == 1:
            activations[-1] = expit(logits)
        else:
            if active is not None and not np.all(active):
                logits[:, ~np.asarray(active)] = -np.inf
            activations[-1] = softmax(logits, axis=1)
        return activations

    def _output_residual(self, p, y):
        """``δ_L = p − onehot(y)``: gradient of the log-loss wrt the output logits."""
        delta = p.copy()
        if self.n_outputs == 1:
            delta[:, 0] -= y == 1
        else:
            delta[np.arange(len(y)), y] -= 1
        return delta

    def _output_factor(self, p):
        """``L`` with ``L Lᵀ = ∂²ℓ/∂z²``, the log-loss's Hessian in the logits.

        Shape ``(n, n_outputs, q)``. Binary (one logistic unit): ``√(p(1−p))``.
        Softmax: ``diag(p) − ppᵀ = L Lᵀ`` with ``L = diag(√p) − p √pᵀ`` (uses
        ``Σ p = 1``); an inactive class (``p = 0``) gives zero rows and columns.
        """
        if self.n_outputs == 1:
            return np.sqrt(p * (1 - p))[:, :, None]
        sqrt_p = np.sqrt(p)
        L = -p[:, :, None] * sqrt_p[:, None, :]
        diagonal = np.arange(p.shape[1])
        L[:, diagonal, diagonal] += sqrt_p
        return L

    def _as_dense(self, X, theta):
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
        return X.astype(theta.dtype, copy=False)

    def _backprop(self, activations, delta, theta):
        """Rows ``J_iᵀ δ_iq`` for output-space vectors ``δ`` of shape (n, q, n_outputs).

        ``J_i`` is the Jacobian of row ``i``'s logits with respect to ``θ``. Returns
        shape ``(n, q, n_params)``: one pass backwards through the layers, every
        step a batched product over the chunk (only the layers are looped over).
        """
        layers = self._views(theta)
        n, q = delta.shape[:2]
        out = np.empty((n, q, self.n_params), dtype=theta.dtype)
        derivative = DERIVATIVES[self.activation]
        for i in range(len(layers) - 1, -1, -1):
            start, w_stop, b_stop = self.layer_slices[i]
            A = activations[i]
            out[:, :, start:w_stop] = (
                A[:, None, :, None] * delta[:, :, None, :]
            ).reshape(n, q, -1)
            out[:, :, w_stop:b_stop] = delta
            if i > 0:
                delta = delta @ layers[i][0].T
                # f′ at this layer, from its outputs (scikit-learn's in-place rule).
                slope = np.ones_like(activations[i])
                derivative(activations[i], slope)
                delta *= slope[:, None, :]
        return out

    def gradient_rows(self, X, y, theta, active):
        """Per-sample gradients of ``ℓ_i``, shape ``(n, n_params)``, by backprop."""
        X = self._as_dense(X, theta)
        activations = self.forward(X, theta, active)
        delta = self._output_residual(activations[-1], y)
        return self._backprop(activations, delta[:, None, :], theta)[:, 0, :]

    # -- curvature ---------------------------------------------------------------
    kinds = ("fisher", "gauss_newton")

    def factor_rank(self, kind):
        """1 for the Fisher, ``n_outputs`` for the Gauss–Newton matrix."""
        self._check_kind(kind)
        return 1 if kind == "fisher" else self.n_outputs

    def _check_kind(self, kind):
        if kind not in self.kinds:
            raise ValueError(
                f"{type(self).__name__} has no curvature {kind!r}; "
                f"choose one of {list(self.kinds)}"
            )

    def factor_rows(self, X, y, theta, active, kind):
        """Rows ``u`` with ``K_i = Σ_q u_iq u_iqᵀ``, shape ``(n, q, n_params)``.

        Fisher: ``u_i1 = g_i``. Gauss–Newton: ``u_iq = J_iᵀ L_i[:, q]``, the
        columns of the output Hessian's factor backpropagated through the network.
        """
        self._check_kind(kind)
        if kind == "fisher":
            return self.gradient_rows(X, y, theta, active)[:, None, :]
        X = self._as_dense(X, theta)
        activations = self.forward(X, theta, active)
        L = self._output_factor(activations[-1])
        return self._backprop(activations, L.transpose(0, 2, 1), theta)

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
        n_jobs=None,
        verbose=0,
    ):
        """``Σ_i w_i K_i`` restricted to each block.

        The Gauss–Newton matrix accumulates the ``q = n_outputs`` factor rows of
        every row of a chunk, weighted by ``√w_i``, with one SYRK per block (level-3
        BLAS over ``chunk × q`` rows), in one process; the Fisher is the generic
        one (row groups through joblib, progress when ``verbose``).
        """
        self._check_kind(kind)
        if kind == "fisher":
            return super().curvature_blocks(
                X,
                y,
                weights,
                theta,
                active,
                kind,
                bounds,
                batch_size,
                random_state,
                n_jobs=n_jobs,
                verbose=verbose,
            )
        if batch_size > 1:
            raise ValueError("fisher_batch_size > 1 applies to the Fisher only")
        q = self.factor_rank(kind)
        itemsize = np.dtype(theta.dtype).itemsize
        blocks = [np.zeros((e - s, e - s), dtype=theta.dtype) for s, e in bounds]
        # Per row: the q factor columns of the widest block (made one block at a
        # time, never all n_params at once) and the layers' activations and
        # backpropagated factors; each block's SYRK then has rank chunk × q.
        widest = max(e - s for s, e in bounds)
        row_bytes = itemsize * (
            q * max(widest, _GROUP_COLUMNS) + 2 * (q + 1) * sum(self.layer_units)
        )
        diagonal = widest == 1  # block_size=1: Σ u² per coordinate, by layer
        groups = _block_groups(bounds, max(widest, _GROUP_COLUMNS))
        total = np.zeros(self.n_params, dtype=theta.dtype)
        for rows in row_chunks(X.shape[0], row_bytes):
            Xc = self._as_dense(X[rows], theta)
            activations = self.forward(Xc, theta, active)
            L = self._output_factor(activations[-1]).transpose(0, 2, 1)
            L = L * np.sqrt(weights[rows]).astype(theta.dtype)[:, None, None]
            deltas = self._layer_deltas(activations, L, theta)
            if diagonal:
                self._add_diagonal(total, activations, deltas)
                continue
            for group in groups:
                self._add_group(blocks, bounds, group, activations, deltas)
        if diagonal:
            return [total[s:e].reshape(1, 1).copy() for s, e in bounds]
        return [symmetrize_from_lower(block) for block in blocks]

    def _add_group(self, blocks, bounds, group, activations, deltas):
        """Add a chunk's factor rows to the blocks ``group`` (consecutive indices):
        one SYRK for a single block, one batched product for equal small ones."""
        first, last = group[0], group[-1]
        s, e = bounds[first][0], bounds[last][1]
        U = self._block_columns(activations, deltas, s, e)
        if len(group) == 1:
            accumulate_gram(blocks[first], U, U, same=True, in_place=True)
            return
        size = bounds[first][1] - s
        stacked = U.reshape(U.shape[0], len(group), size).transpose(1, 0, 2)
        products = np.matmul(stacked.transpose(0, 2, 1), stacked)
        for index, product in zip(group, products):
            blocks[index] += product

    def _add_diagonal(self, total, activations, deltas):
        """``total += Σ_iq u_iq²``: for ``W_l[j, k]`` it is ``Σ_i a_ij² Σ_q δ_iqk²``,
        one GEMM per layer; for a bias ``Σ_iq δ_iqk²``."""
        for i, (first, w_stop, b_stop) in enumerate(self.layer_slices):
            squares = np.einsum("iqk,iqk->ik", deltas[i], deltas[i])
            total[first:w_stop] += (np.square(activations[i]).T @ squares).ravel()
            total[w_stop:b_stop] += squares.sum(axis=0)

    def _layer_deltas(self, activations, delta, theta):
        """The output-space vectors ``δ`` (n, q, n_outputs) backpropagated to every
        layer: ``[δ_0, …, δ_last]``, ``δ_l`` of shape (n, q, fan_out of layer l)."""
        layers = self._views(theta)
        derivative = DERIVATIVES[self.activation]
        deltas = [None] * len(layers)
        for i in range(len(layers) - 1, -1, -1):
            deltas[i] = delta
            if i > 0:
                delta = delta @ layers[i][0].T
                slope = np.ones_like(activations[i])
                derivative(activations[i], slope)
                delta *= slope[:, None, :]
        return deltas

    def _block_columns(self, activations, deltas, start, stop):
        """Columns ``start:stop`` of the factor rows ``J_iᵀ δ_iq``, as a C-ordered
        ``(n·q, stop − start)`` array: for a weight ``W_l[j, k]`` the column is
        ``a_l[:, j] δ_l[:, :, k]``, for a bias ``δ_l[:, :, k]``."""
        n, q = deltas[0].shape[:2]
        out = np.empty((n, q, stop - start), dtype=deltas[0].dtype)
        for i, (first, w_stop, b_stop) in enumerate(self.layer_slices):
            fan_out = b_stop - w_stop
            lo, hi = max(start, first), min(stop, w_stop)
            if lo < hi:  # weights: whole rows j0..j1 of W_l, then trimmed
                j0 = (lo - first) // fan_out
                j1 = (hi - 1 - first) // fan_out + 1
                band = (
                    activations[i][:, None, j0:j1, None] * deltas[i][:, :, None, :]
                ).reshape(n, q, -1)
                offset = first + j0 * fan_out
                out[:, :, lo - start : hi - start] = band[
                    :, :, lo - offset : hi - offset
                ]
            lo, hi = max(start, w_stop), min(stop, b_stop)
            if lo < hi:  # biases
                out[:, :, lo - start : hi - start] = deltas[i][
                    :, :, lo - w_stop : hi - w_stop
                ]
        return out.reshape(n * q, stop - start)

    def logit_directional_derivative(self, X, theta, direction, active=None):
        """``J_i d`` for every row: how the logits move along ``direction``.

        One forward pass with tangents (forward mode, no autodiff library):
        ``ż_{l+1} = ȧ_l W_l + a_l Ẇ_l + ḃ_l``, ``ȧ_{l+1} = f′(z_{l+1}) ⊙ ż_{l+1}``.

        Returns
        -------
        logits_tangent : ndarray of shape (n, n_outputs)
        probabilities : ndarray of shape (n, n_outputs)
        """
        X = self._as_dense(X, theta)
        activations = self.forward(X, theta, active)
        layers = self._views(theta)
        tangents = self._views(np.asarray(direction, dtype=theta.dtype))
        derivative = DERIVATIVES[self.activation]
        dot = np.zeros_like(X)
        for i, ((W, _), (dW, db)) in enumerate(zip(layers, tangents)):
            dz = dot @ W + activations[i] @ dW + db
            if i < len(layers) - 1:
                derivative(activations[i + 1], dz)
            dot = dz
        return dot, activations[-1]

    def curvature_quadratic(self, X, y, weights, theta, direction, kind):
        """``Σ_i w_i dᵀ K_i d`` at ``θ`` without forming any ``K_i``.

        Gauss–Newton: ``(J_i d)ᵀ ∂²ℓ/∂z² (J_i d)`` from one forward pass with
        tangents; Fisher: ``(g_iᵀ d)²``.
        """
        self._check_kind(kind)
        total = 0.0
        itemsize = np.dtype(theta.dtype).itemsize
        active = np.ones(max(self.n_outputs, 2), dtype=bool)
        row_bytes = itemsize * 4 * (sum(self.layer_units) + self.n_params)
        for rows in row_chunks(X.shape[0], row_bytes):
            if kind == "fisher":
                G = self.gradient_rows(X[rows], y[rows], theta, active)
                values = (G @ direction) ** 2
            else:
                dz, p = self.logit_directional_derivative(X[rows], theta, direction)
                if self.n_outputs == 1:
                    values = (p * (1 - p) * dz**2)[:, 0]
                else:
                    values = np.sum(p * dz**2, axis=1) - np.sum(p * dz, axis=1) ** 2
            total += float(weights[rows] @ values)
        return total

    def curvature_product(self, X, y, weights, theta, vector, kind):
        """``Σ_i w_i K_i v`` at ``θ`` without forming any ``K_i``.

        Gauss–Newton: ``J_iᵀ (∂²ℓ/∂z²) (J_i v)``, a forward pass with tangents and
        one backward pass; Fisher: ``Σ_i w_i g_i (g_iᵀ v)``.
        """
        self._check_kind(kind)
        out = np.zeros(self.n_params, dtype=theta.dtype)
        itemsize = np.dtype(theta.dtype).itemsize
        active = np.ones(max(self.n_outputs, 2), dtype=bool)
        row_bytes = itemsize * 4 * (sum(self.layer_units) + self.n_params)
        for rows in row_chunks(X.shape[0], row_bytes):
            w = weights[rows]
            if kind == "fisher":
                G = self.gradient_rows(X[rows], y[rows], theta, active)
                out += G.T @ (w * (G @ vector))
                continue
            Xc = self._as_dense(X[rows], theta)
            dz, p = self.logit_directional_derivative(Xc, theta, vector)
            if self.n_outputs == 1:
                hz = p * (1 - p) * dz
            else:
                hz = p * dz - p * np.sum(p * dz, axis=1, keepdims=True)
            activations = self.forward(Xc, theta)
            hz *= w[:, None]
            out += self._backprop(activations, hz[:, None, :], theta)[:, 0].sum(axis=0)
        return out

    def losses(self, X, y, theta, active=None):
        """Per-row log-loss ``ℓ_i(θ)``, shape (n,), computed stably from the logits."""
        X = self._as_dense(X, theta)
        layers = self._views(theta)
        hidden = ACTIVATIONS[self.activation]
        A = X
        for i, (W, b) in enumerate(layers):
            A = A @ W + b
            if i < len(layers) - 1:
                hidden(A)
        if self.n_outputs == 1:
            z = A[:, 0]
            sign = np.where(y == 1, -1.0, 1.0)
            return np.logaddexp(0, sign * z)
        if active is not None and not np.all(active):
            A = A.copy()
            A[:, ~np.asarray(active)] = -np.inf
        with np.errstate(invalid="ignore"):
            return -log_softmax(A, axis=1)[np.arange(len(y)), y]
