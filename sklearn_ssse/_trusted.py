"""The exact types a skops file of this version's erasable models may hold.

``skops.io.get_untrusted_types(file=...)`` lists what a *file* says it holds: a
tampered file lists whatever the attacker put in it. Trust this list instead,
which comes with the library: ``skops.io.load(path, trusted=trusted_types())``
then refuses a file naming any other type.
"""

__all__ = ["trusted_types"]

# Every type of this package (and the few of scikit-learn and SciPy outside
# skops' own defaults) that a fitted erasable model, its state, its records or a
# composition of them puts in a skops file. tests/test_privacy.py dumps every
# estimator and structure and checks that nothing else appears.
_TRUSTED = (
    "scipy.sparse._csr.csr_matrix",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn_ssse._curvature.BlockDiagonalInverse",
    "sklearn_ssse._curvature_cg.ConjugateGradientCurvature",
    "sklearn_ssse._curvature_cg.RowCurvature",
    "sklearn_ssse._curvature_lowrank.LowRankUpdatedInverse",
    "sklearn_ssse._stacked.StackedBlockInverse",
    "sklearn_ssse._state.ErasureState",
    "sklearn_ssse._state.RequestLog",
    "sklearn_ssse._state.RequestRecord",
    "sklearn_ssse.certificate.CertificateState",
    "sklearn_ssse.compose.ErasableSimpleImputer",
    "sklearn_ssse.linear_model.ErasableLogisticRegression",
    "sklearn_ssse.linear_model.ErasableLogisticRegressionCV",
    "sklearn_ssse.multioutput.ErasableMultiOutputClassifier",
    "sklearn_ssse.neural_network.ErasableMLPClassifier",
)


def trusted_types():
    """The types to trust when loading a skops file of an erasable model.

    Pass it to ``skops.io.load(..., trusted=trusted_types())``. Unlike the list
    that ``skops.io.get_untrusted_types`` reads from the file itself, this one
    ships with the library, so a file that names another type (a tampered
    file: ``subprocess.Popen`` in place of the state) is refused instead of
    loaded. pickle and joblib files are not protected by this: they run code
    when loaded; load only files you wrote.

    Returns
    -------
    list of str
        Fully qualified type names, sorted.

    Examples
    --------
    >>> import skops.io as sio
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from sklearn_ssse import ErasableLogisticRegression, trusted_types
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = scale(X)
    >>> model = ErasableLogisticRegression().fit(X, y).partial_forget(X[:1], y[:1])
    >>> data = sio.dumps(model)
    >>> set(sio.get_untrusted_types(data=data)) <= set(trusted_types())
    True
    >>> loaded = sio.loads(data, trusted=trusted_types())
    >>> bool((loaded.coef_ == model.coef_).all())
    True
    """
    return sorted(_TRUSTED)
