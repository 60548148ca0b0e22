"""The exceptions and warnings sklearn-ssse raises.

Every refusal of a request is an :class:`ErasureError`, a subclass of
:class:`ValueError`, so ``except ValueError`` clauses written for earlier versions
keep working. Its subclasses tell the reasons apart:

- :class:`InvalidRequestError`: the request itself is wrong (labels never seen,
  duplicated rows, rows already forgotten, non-positive weights, more rows than
  remain, rows that cannot be training rows). Fix the request.
- :class:`ErasureNumericalError`: the request looked valid but the update could not
  be computed reliably (a downdate that would leave the stored curvature indefinite,
  non-finite parameters). Usually the rows were not training rows with these labels
  and weights, or the model should be refitted.
- :class:`IncompatibleStateError`: the stored erasure state cannot serve the request
  (built by another state format, parameters changed since ``fit``, the model was
  edited outside the library). Refit.
- :class:`CurvatureMemoryError` (raised by ``fit``, not a request): the stored
  curvature would not fit in ``memory_budget``.
- :class:`RefitRecommendedError`: the cumulative bound on the distance to the exact
  retrain passed the model's budget (raised only when asked for).

Warnings: :class:`RefitRecommendedWarning` (a request passed the certificate's
budget), :class:`CostlyErasureWarning` (``fit`` chose a structure whose requests
may cost as much as a refit or more) and :class:`InconsistentStateVersionWarning`.

In every case the model is left exactly as it was.
"""

__all__ = [
    "CostlyErasureWarning",
    "CurvatureMemoryError",
    "ErasureError",
    "ErasureNumericalError",
    "IncompatibleStateError",
    "InconsistentStateVersionWarning",
    "InvalidRequestError",
    "RefitRecommendedError",
    "RefitRecommendedWarning",
    "SealedPointWarning",
    "StaleStateError",
    "UnscaledInputWarning",
]


class ErasureError(ValueError):
    """Base class of every refusal of an erasure request (a :class:`ValueError`)."""


class InvalidRequestError(ErasureError):
    """The request is invalid: the model cannot have been trained on these rows.

    Examples: labels not seen in ``fit``, the same row twice, rows already
    forgotten, zero or negative sample weights, more rows of a class than remain,
    rows outside anything the model was fitted on.
    """


class ErasureNumericalError(ErasureError, ArithmeticError):
    """The update could not be computed reliably; the model is unchanged.

    Raised, for example, when removing the rows would leave the stored curvature
    indefinite (they cannot all be training rows with these labels and weights) or
    when the step would produce non-finite parameters.
    """


class IncompatibleStateError(ErasureError):
    """The stored erasure state cannot serve this request; call ``fit`` again.

    Raised when the state was written by an incompatible version of the library,
    when a parameter that shapes the stored curvature changed since ``fit``, or
    when the fitted parameters were modified outside the library.
    """


class CurvatureMemoryError(ValueError):
    """The erasure state would not fit in the memory budget.

    Raised by ``fit`` before the solver runs, so nothing was fitted or allocated;
    the message gives the estimate and the options that fit. A ``ValueError``
    (the parameters do not suit the data), not a ``MemoryError``, and not an
    :class:`ErasureError` (it refuses a fit, not a request).
    """


class RefitRecommendedError(ErasureError):
    """The certified distance to the exact retrain passed the model's budget."""


class RefitRecommendedWarning(UserWarning):
    """The certified distance to the exact retrain passed the model's budget."""


class CostlyErasureWarning(UserWarning):
    """``curvature_structure="auto"`` chose a structure whose requests may cost
    as much as refitting the model or more.

    Raised by ``fit`` (the model is fitted and takes requests). The estimate
    counts the operations of a typical request (a dozen products with the stored
    curvature) against those of the solver's run in this ``fit``; it is right to
    within a factor of about 2.5 on sparse text, so it warns from half a refit's
    work up. Choose ``curvature_structure`` explicitly to silence it.
    """


class InconsistentStateVersionWarning(UserWarning):
    """An erasable model was unpickled from another version of sklearn-ssse.

    Like :class:`sklearn.exceptions.InconsistentVersionWarning`: predictions work
    as before, but ``partial_forget`` refuses a state whose format differs from the
    running version's (:class:`IncompatibleStateError`).

    Parameters
    ----------
    estimator_name : str
        Name of the estimator class.
    current_version : str
        The running sklearn-ssse version.
    original_version : str
        The version that pickled the model (``"unknown"`` before 0.2).
    """

    def __init__(self, *, estimator_name, current_version, original_version):
        self.estimator_name = estimator_name
        self.current_version = current_version
        self.original_version = original_version

    def __str__(self):
        return (
            f"Trying to unpickle {self.estimator_name} from sklearn-ssse version "
            f"{self.original_version} when using version {self.current_version}. "
            "Predictions are unchanged, but check that the erasure state is "
            "compatible before relying on partial_forget (a state of another "
            "format is refused); refitting with this version is safest."
        )


class StaleStateError(ErasureError):
    """A saved model file moved on since this model was loaded from it.

    Raised by :meth:`sklearn_ssse.persistence.ErasureStore.save` (a
    compare-and-swap) when the file's state is not an ancestor of the model's:
    another worker published a request meanwhile, and saving would silently undo
    it. Nothing was written; load the newest state, apply the request again and
    save (or use :meth:`~sklearn_ssse.persistence.ErasureStore.transaction`).
    """


class UnscaledInputWarning(UserWarning):
    """The inputs of a model whose erasure step assumes roughly unit-scale
    features are far from it (:class:`~sklearn_ssse.ErasableMLPClassifier`):
    one step from such a fit can wreck the network. Scale the features first
    (``StandardScaler`` in a pipeline)."""


class SealedPointWarning(UserWarning):
    """A loaded model's fit point is sealed and its key was not set: requests
    linearise at the published parameters from now on (the state was re-based).
    Set the key with ``set_erasure_key`` before saving and after loading to keep
    ``linearization="fit"`` across saves (``docs/privacy.md``)."""


class ApproximateCurvatureWarning(UserWarning):
    """``curvature_structure="auto"`` stored an approximate curvature because the
    exact one would not fit in ``memory_budget``.

    Raised by ``fit`` (the model is fitted and takes requests): instead of
    refusing, ``"auto"`` fell back to the most faithful structure that fits (the
    class blocks ``"cg-class"``, then dense blocks of the largest ``block_size``
    that fits, down to the diagonal ``block_size=1``); requests then land
    further from the refit. The message names the structures that did not fit
    and the options. Set ``curvature_structure`` (or ``block_size``) explicitly,
    or give a larger ``memory_budget``, to silence it.
    """


__all__ += ["ApproximateCurvatureWarning"]
