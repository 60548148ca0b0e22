"""The erasure engine shared by every erasable estimator.

:class:`ErasableMixin` gives an estimator ``partial_forget`` and the fit-time state it
needs. It is model-agnostic: the estimator supplies its model family's maths
(:class:`~sklearn_ssse._maths.ModelMaths`) and a handful of small hooks; the linear
algebra lives in :mod:`sklearn_ssse._curvature`.

The update (METHOD.md, eq. 1) for a request ``S``::

    θ ← θ − ε · M⁻¹ · ∇J_{-S}(θ),   ∇J_{-S}(θ) ≈ r₀ − C Σ_{i∈S} w_i ∇ℓ_i(θ)

with ``M = λ·P + C Σ_i w_i K_i(θ*)`` the stored curvature (Fisher or Hessian, at the
fitted ``θ*``) and ``r₀`` the objective gradient the solver left at ``θ*`` (cancelled
at the first request, zero afterwards). The rows of ``S`` are then taken out of ``M``
by a rank-``k`` Woodbury downdate (or a dense re-solve when ``k`` is large); with
``leave_out=True`` the step uses the downdated ``M``.
"""

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ._curvature import BlockDiagonalInverse, block_bounds

__all__ = ["ErasableMixin"]

# Parameters that shape the stored curvature: changing them needs a new fit.
CURVATURE_PARAMS = ("curvature", "damping", "block_size", "fisher_batch_size")


class ErasableMixin:
    """Mixin giving a fitted classifier ``partial_forget``, the SSSE update.

    The estimator provides:

    - ``_erasure_maths()``: its :class:`~sklearn_ssse._maths.ModelMaths`;
    - ``_get_flat_params()`` / ``_flat_params_attributes(theta)``: its parameters as
      a flat vector, and the fitted attributes (e.g. ``coef_``) of a vector;
    - ``_objective_scaling()``: ``(C, penalty_strength, penalized_mask)`` such that
      the training objective is ``C Σ w_i ℓ_i + ½ penalty_strength ‖θ[mask]‖²``;
    - ``_class_weights(weight_sums, active)``: the per-class weights the objective
      gives the remaining rows (ones by default).

    It calls :meth:`_fit_erasure_state` at the end of ``fit``.
    """

    # -- hooks with defaults -------------------------------------------------------
    def _class_weights(self, weight_sums, active):
        return np.ones(len(weight_sums), dtype=np.float64)

    def _class_weights_depend_on_data(self):
        return False

    def _check_erasable(self):
        """Raise if this fitted model cannot take a request at all (default: it can)."""

    def _damping_mask(self, penalized):
        """Coordinates that receive the damping λ (default: the penalised ones).

        A family whose unpenalised coordinates can be flat for the data (a
        network's intercepts) damps every coordinate, the paper's ``λ·I``.
        """
        return penalized

    def _zero_forgotten_classes(self, theta, active):
        """Parameters that belong only to classes with no rows left, set to zero.

        A class whose rows are all forgotten must not keep parameters learnt from
        them; the default has no per-class parameters to clear.
        """
        return theta

    def _curvature_kind(self):
        """``"fisher"`` or ``"hessian"``; families without a Hessian omit the param."""
        return getattr(self, "curvature", "fisher")

    def _curvature_params(self):
        """Current values of the parameters that shape the stored curvature."""
        return {
            name: getattr(self, name)
            for name in CURVATURE_PARAMS
            if hasattr(self, name)
        }

    # -- fit-time state --------------------------------------------------------------
    def _fit_erasure_state(self, X, y, sample_weight):
        """Build the inverse curvature and the bookkeeping at the fitted parameters.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n_samples, n_features)
            The validated training data.
        y : ndarray of shape (n_samples,)
            Class indices into ``classes_``.
        sample_weight : ndarray of shape (n_samples,)
            Validated sample weights (ones when none were given).
        """
        maths = self._erasure_maths()
        theta = self._get_flat_params()
        n_classes = len(self.classes_)
        active = np.ones(n_classes, dtype=bool)
        C, penalty_strength, penalized = self._objective_scaling()

        weight_sums = np.bincount(y, weights=sample_weight, minlength=n_classes)
        class_weight = np.asarray(
            self._class_weights(weight_sums, active), dtype=X.dtype
        )
        weights = sample_weight * class_weight[y]

        bounds = block_bounds(maths.n_params, self.block_size, maths.group_bounds())
        blocks = maths.curvature_blocks(
            X,
            y,
            weights,
            theta,
            active,
            self._curvature_kind(),
            bounds,
            batch_size=self.fisher_batch_size,
            random_state=getattr(self, "random_state", None),
        )
        damping = penalty_strength if self.damping is None else self.damping
        null = maths.null_directions()
        damped = self._damping_mask(penalized)
        prior = np.zeros(maths.n_params, dtype=theta.dtype)
        for block, (start, stop) in zip(blocks, bounds):
            block *= C
            diagonal = np.diag(block)
            scale = diagonal.mean() if diagonal.size and diagonal.mean() > 0 else 1.0
            floor = np.sqrt(np.finfo(block.dtype).eps) * scale
            prior[start:stop] = damping * damped[start:stop] + floor
            block[np.diag_indices_from(block)] += prior[start:stop]
            # Flat directions wholly inside this block get the data's own scale.
            for direction in null[start:stop].T:
                support = np.flatnonzero(direction)
                if np.isclose(np.linalg.norm(direction), 1.0):
                    part = np.outer(direction[support], direction[support])
                    block[np.ix_(support, support)] += scale * part
        self.curvature_inverse_ = BlockDiagonalInverse.from_blocks(bounds, blocks)

        class_sums = maths.gradient_sums(X, y, sample_weight, theta, active, n_classes)
        self.residual_gradient_ = (
            C * (class_weight @ class_sums) + penalty_strength * penalized * theta
        ).astype(theta.dtype)
        self.class_gradient_sums_ = (
            class_sums if self._class_weights_depend_on_data() else None
        )
        self.curvature_point_ = theta.copy()
        self.damping_diagonal_ = prior
        self.fit_class_weight_ = class_weight
        self.class_counts_ = np.bincount(y, minlength=n_classes)
        self.class_weight_sums_ = weight_sums
        self.curvature_params_ = self._curvature_params()
        self.n_forgotten_ = 0

    # -- partial_forget --------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_forget(self, X, y, sample_weight=None):
        """Erase training rows from the fitted model in one closed-form step.

        Applies the SSSE update (or the influence update with
        ``curvature="hessian"``) for the rows ``(X, y)``, then removes their
        contribution from the stored curvature, so that later requests and the
        stored state no longer depend on them. Only the rows to forget are needed.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_rows, n_features)
            The rows to forget, as given to ``fit``.
        y : array-like of shape (n_rows,)
            Their labels, as given to ``fit``.
        sample_weight : array-like of shape (n_rows,), default=None
            The sample weights these rows had in ``fit`` (ones when ``None``).

        Returns
        -------
        self : object
            The updated estimator.

        Raises
        ------
        ValueError
            On bad input (wrong number of features, NaN or infinite values, labels
            not seen in ``fit``, more rows of a class than remain, every remaining
            row, mismatched lengths) or when a parameter that shapes the stored
            curvature was changed since ``fit``. The model is left unchanged.
        """
        self._check_erasable()
        check_is_fitted(self, "curvature_inverse_")
        X, y, sample_weight = self._validate_forget_data(X, y, sample_weight)
        if X.shape[0] == 0:
            return self
        try:
            updates = self._forget_updates(X, y, sample_weight)
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                f"the erasure update failed numerically ({exc}); the model is unchanged"
            ) from exc
        # Everything was computed before any attribute changes: the request is atomic.
        for name, value in updates.items():
            setattr(self, name, value)
        return self

    def _validate_forget_data(self, X, y, sample_weight):
        current = self._curvature_params()
        for name, used in self.curvature_params_.items():
            if current[name] != used:
                raise ValueError(
                    f"{name}={current[name]!r} differs from {used!r}, the value "
                    "the stored curvature was built with; call fit again to change it "
                    "(forget_scale and leave_out can be changed at any time)"
                )
        X, y = validate_data(
            self,
            X,
            y,
            reset=False,
            accept_sparse="csr",
            dtype=self.curvature_inverse_.dtype,
            order="C",
            ensure_min_samples=0,
        )
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=X.dtype, allow_all_zero_weights=True
        )
        unseen = ~np.isin(y, self.classes_)
        if np.any(unseen):
            raise ValueError(
                f"y contains labels not seen in fit: {np.unique(y[unseen]).tolist()}; "
                f"the model knows {self.classes_.tolist()}"
            )
        y = np.searchsorted(self.classes_, y)
        requested = np.bincount(y, minlength=len(self.classes_))
        too_many = requested > self.class_counts_
        if np.any(too_many):
            details = ", ".join(
                f"{requested[a]} of class {self.classes_[a]!r} "
                f"({self.class_counts_[a]} remain)"
                for a in np.flatnonzero(too_many)
            )
            raise ValueError(
                "cannot forget more rows than remain: asked for " + details
            )
        if len(y) and requested.sum() == self.class_counts_.sum():
            raise ValueError(
                "cannot forget every remaining training row: no model can be left"
            )
        return X, y, sample_weight

    def _forget_updates(self, X, y, sample_weight, step=None):
        """The new values of every fitted attribute that a request changes.

        ``step(gradient, inverse, downdated_inverse)`` may replace the SSSE step
        ``-ε M⁻¹ ∇J_{-S}`` (see :mod:`sklearn_ssse.baselines`); the bookkeeping and
        the removal of the rows from the stored curvature stay the same.
        """
        maths = self._erasure_maths()
        theta = self._get_flat_params()
        n_classes = len(self.classes_)
        C, _, _ = self._objective_scaling()
        active = self.class_counts_ > 0

        # Gradient of the objective without S, at the current parameters.
        forgotten_sums = maths.gradient_sums(
            X, y, sample_weight, theta, active, n_classes
        )
        counts = self.class_counts_ - np.bincount(y, minlength=n_classes)
        weight_sums = np.maximum(
            self.class_weight_sums_
            - np.bincount(y, weights=sample_weight, minlength=n_classes),
            0.0,
        )
        new_active = counts > 0
        old_weights = np.asarray(self._class_weights(self.class_weight_sums_, active))
        gradient = self.residual_gradient_ - C * (old_weights @ forgotten_sums)
        remaining_sums = None
        if self.class_gradient_sums_ is not None:
            # Class weights that depend on the data (class_weight="balanced") change
            # for every remaining row: first-order effect from per-class sums.
            new_weights = np.asarray(self._class_weights(weight_sums, new_active))
            remaining_sums = self.class_gradient_sums_ - forgotten_sums
            remaining_sums[~new_active] = 0
            new_weights[~new_active] = 0
            gradient = gradient + C * ((new_weights - old_weights) @ remaining_sums)

        # Take S out of the stored curvature, evaluated where it was built.
        inverse = self.curvature_inverse_
        fit_weights = C * sample_weight * self.fit_class_weight_[y]
        all_active = np.ones(n_classes, dtype=bool)
        rank = X.shape[0] * maths.factor_rank(self._curvature_kind())
        estimated = self.curvature_params_.get("fisher_batch_size", 1) > 1
        if inverse.prefers_factors(rank) and not estimated:
            rows = maths.factor_rows(
                X, y, self.curvature_point_, all_active, self._curvature_kind()
            )
            rows *= np.sqrt(fit_weights)[:, None, None]
            U = rows.reshape(-1, maths.n_params)
            new_inverse = inverse.downdated(
                factors=[U[:, s:e].T for s, e in inverse.bounds]
            )
        else:
            grams = maths.curvature_blocks(
                X,
                y,
                fit_weights,
                self.curvature_point_,
                all_active,
                self._curvature_kind(),
                inverse.bounds,
            )
            # A mini-batch Fisher is an estimate: remove only what it holds.
            prior = self.damping_diagonal_ if estimated else None
            new_inverse = inverse.downdated(grams=grams, prior=prior)

        if step is None:
            step_inverse = new_inverse if self.leave_out else inverse
            delta = -self.forget_scale * step_inverse.apply(gradient)
        else:
            delta = step(gradient, inverse, new_inverse)
        theta_new = self._zero_forgotten_classes(theta + delta, new_active)
        if not np.all(np.isfinite(theta_new)):
            raise np.linalg.LinAlgError("the update produced non-finite parameters")

        updates = self._flat_params_attributes(theta_new.astype(theta.dtype))
        updates.update(
            curvature_inverse_=new_inverse,
            residual_gradient_=np.zeros_like(self.residual_gradient_),
            class_counts_=counts,
            class_weight_sums_=weight_sums,
            class_gradient_sums_=remaining_sums,
            n_forgotten_=self.n_forgotten_ + X.shape[0],
        )
        return updates
