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
from scipy.special import expit, softmax
from sklearn.neural_network._base import ACTIVATIONS, DERIVATIVES

from ._maths import ModelMaths

__all__ = ["MLPMaths"]


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

    def gradient_rows(self, X, y, theta, active):
        """Per-sample gradients of ``ℓ_i``, shape ``(n, n_params)``, by backprop."""
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
        X = X.astype(theta.dtype, copy=False)
        n = X.shape[0]
        activations = self.forward(X, theta, active)
        layers = self._views(theta)
        out = np.empty((n, self.n_params), dtype=theta.dtype)
        delta = self._output_residual(activations[-1], y)
        derivative = DERIVATIVES[self.activation]
        for i in range(len(layers) - 1, -1, -1):
            start, w_stop, b_stop = self.layer_slices[i]
            A = activations[i]
            out[:, start:w_stop] = (A[:, :, None] * delta[:, None, :]).reshape(n, -1)
            out[:, w_stop:b_stop] = delta
            if i > 0:
                delta = delta @ layers[i][0].T
                derivative(activations[i], delta)
        return out
