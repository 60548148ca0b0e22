"""A realistic multi-attribute problem built from a data set scikit-learn ships.

The paper's multi-attribute setting (CelebA: 40 binary face attributes, several of
them rare) has no bundled counterpart in scikit-learn; this is the closest one the
tests, examples and benchmarks share.
"""

import numpy as np
from sklearn.datasets import load_diabetes

__all__ = ["load_diabetes_attributes", "load_docstring_corpus"]


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


def _docstrings():
    """(text, top-level package) of every documented object of the standard library."""
    import importlib
    import inspect
    import pkgutil
    import sys
    import warnings

    skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"}
    texts, groups = [], []
    names = sorted(
        name
        for name in sys.stdlib_module_names
        if not name.startswith("_") and name not in skip
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            try:
                module = importlib.import_module(name)
            except Exception:  # platform-specific or broken modules
                continue
            modules = [module]
            for info in pkgutil.iter_modules(getattr(module, "__path__", []) or []):
                if info.name.startswith("_") or "test" in info.name:
                    continue
                try:
                    modules.append(importlib.import_module(f"{name}.{info.name}"))
                except Exception:
                    continue
            for mod in modules:
                objects = [mod]
                for _, obj in inspect.getmembers(mod):
                    if getattr(obj, "__module__", None) == mod.__name__:
                        objects.append(obj)
                        if inspect.isclass(obj):
                            objects.extend(
                                v for v in vars(obj).values() if inspect.isfunction(v)
                            )
                for obj in objects:
                    doc = obj.__doc__ if isinstance(obj.__doc__, str) else None
                    if doc and len(doc) >= 40:
                        texts.append(doc)
                        groups.append(name)
    return texts, groups


def load_docstring_corpus(*, n_classes=2, min_df=2, ngram_range=(1, 2), dtype=None):
    """A sparse TF-IDF text problem built from the standard library's docstrings.

    Every Python install has the same text, so the problem is reproducible without
    a download: each document is the docstring of one module, class or function of
    the standard library (duplicates removed, in a fixed order), labelled by the
    group of top-level modules it comes from: whole modules are dealt, largest
    first, to the class with the fewest documents so far, which gives classes of
    about equal size.

    The exact counts depend on the Python version (the standard library changes);
    the construction does not.

    Parameters
    ----------
    n_classes : int, default=2
        Number of classes (at least 2).
    min_df : int, default=2
        Passed to :class:`~sklearn.feature_extraction.text.TfidfVectorizer`.
    ngram_range : tuple of int, default=(1, 2)
        Passed to :class:`~sklearn.feature_extraction.text.TfidfVectorizer`.
    dtype : dtype, default=None
        dtype of the TF-IDF matrix (float64 when ``None``).

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_documents, n_features)
        The TF-IDF matrix (rows of unit norm).
    y : ndarray of shape (n_documents,)
        Class of each document, integers in ``range(n_classes)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ssse.datasets import load_docstring_corpus
    >>> X, y = load_docstring_corpus(n_classes=6)
    >>> X.shape[0] > 4000, X.shape[1] > 20000, bool(np.bincount(y).min() > 600)
    (True, True, True)
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2; got {n_classes!r}")
    texts, groups = _docstrings()
    texts, first = np.unique(np.asarray(texts, dtype=object), return_index=True)
    order = np.sort(first)
    groups = np.asarray(groups)[order]
    texts = [t for _, t in sorted(zip(first, texts))]
    # Whole modules go to classes, largest first into the smallest class so far:
    # classes of about equal size, each a fixed set of modules.
    names, counts = np.unique(groups, return_counts=True)
    sizes = np.zeros(int(n_classes), dtype=int)
    label = {}
    for i in np.lexsort((names, -counts)):
        label[names[i]] = int(np.argmin(sizes))
        sizes[label[names[i]]] += counts[i]
    y = np.array([label[g] for g in groups])
    vectorizer = TfidfVectorizer(
        min_df=min_df,
        ngram_range=tuple(ngram_range),
        dtype=np.float64 if dtype is None else dtype,
        sublinear_tf=True,
    )
    X = vectorizer.fit_transform(texts)
    return X.tocsr(), y
