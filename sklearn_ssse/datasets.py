"""A realistic multi-attribute problem built from a data set scikit-learn ships.

The paper's multi-attribute setting (CelebA: 40 binary face attributes, several of
them rare) has no bundled counterpart in scikit-learn; this is the closest one the
tests, examples and benchmarks share.
"""

import numpy as np
from sklearn.datasets import load_diabetes

__all__ = ["load_diabetes_attributes"]


def load_diabetes_attributes():
    """Five binary patient attributes, from scikit-learn's bundled diabetes data.

    Predicted from the seven other baseline variables (age and the six blood serum
    measurements): sex, disease progression above the median, *severe* progression
    (top decile: the rare attribute), high body-mass index (top quartile), blood
    pressure above the median.

    Returns
    -------
    X : ndarray of shape (442, 7)
        The predictors, as scikit-learn ships them (centred and scaled).
    Y : ndarray of shape (442, 5)
        The binary indicator matrix of the five attributes.

    Examples
    --------
    >>> from sklearn_ssse.datasets import load_diabetes_attributes
    >>> X, Y = load_diabetes_attributes()
    >>> X.shape, Y.shape, int(Y[:, 2].sum())
    ((442, 7), (442, 5), 44)
    """
    data = load_diabetes()
    D, target = data.data, data.target
    sex, bmi, bp = D[:, 1], D[:, 2], D[:, 3]
    Y = np.column_stack(
        [
            sex > 0,
            target > np.median(target),
            target > np.quantile(target, 0.9),
            bmi > np.quantile(bmi, 0.75),
            bp > np.median(bp),
        ]
    ).astype(int)
    return np.delete(D, [1, 2, 3], axis=1), Y
