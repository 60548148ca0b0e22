"""Reproducible problems the tests, examples and benchmarks share.

The paper's multi-attribute setting (CelebA: 40 binary face attributes, several of
them rare) has no bundled counterpart in scikit-learn:
:func:`load_diabetes_attributes` is the closest one. :func:`load_docstring_corpus`
is a real text problem of a few thousand documents; :func:`make_zipf_corpus` a
synthetic one of any size (hundreds of thousands of documents).
"""

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_diabetes
from sklearn.utils import check_random_state

__all__ = ["load_diabetes_attributes", "load_docstring_corpus", "make_zipf_corpus"]


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


def make_zipf_corpus(
    n_documents=200_000,
    n_features=50_000,
    tokens_per_document=60,
    n_classes=2,
    *,
    zipf_exponent=1.0,
    topic_share=0.15,
    label_noise=0.1,
    dtype=np.float32,
    random_state=None,
):
    """A synthetic TF-IDF text corpus of any size: Zipf vocabulary, topic labels.

    Each document draws ``tokens_per_document`` tokens. A token is, with
    probability ``1 - topic_share``, a word of the shared vocabulary, whose
    ``k``-th most frequent word has probability ``∝ 1 / k^zipf_exponent``; and
    otherwise a word of its class's topic: the same Zipf law over the words in
    an order drawn for each class, so that a few words mark each class
    strongly and many weakly. A share ``label_noise`` of the labels is then
    redrawn uniformly, so that the classes overlap. The columns are shuffled
    (as a vectorizer's alphabetical order is unrelated to frequency), the
    counts become sublinear TF-IDF (``1 + log tf``, smoothed idf) and the rows
    have unit norm, as :class:`~sklearn.feature_extraction.text.TfidfVectorizer`
    with ``sublinear_tf=True`` gives them. Vectorised: a corpus of 200 000
    documents and 50 000 features takes a few seconds.

    Parameters
    ----------
    n_documents : int, default=200_000
        Number of documents (rows).
    n_features : int, default=50_000
        Size of the vocabulary (columns; a word never drawn is a zero column).
    tokens_per_document : int, default=60
        Tokens per document (a row's non-zeros are its distinct words).
    n_classes : int, default=2
        Number of classes (at least 2), about equally frequent.
    zipf_exponent : float, default=1.0
        Exponent of the Zipf law of word frequencies.
    topic_share : float, default=0.15
        Share of a document's tokens drawn from its class's topic.
    label_noise : float, default=0.1
        Share of the labels redrawn uniformly at random.
    dtype : dtype, default=np.float32
        dtype of the TF-IDF matrix.
    random_state : int, RandomState instance or None, default=None
        Seed of every draw: the same seed gives the same corpus.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_documents, n_features)
        The TF-IDF matrix (rows of unit norm, sorted indices).
    y : ndarray of shape (n_documents,)
        Class of each document, integers in ``range(n_classes)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ssse.datasets import make_zipf_corpus
    >>> X, y = make_zipf_corpus(2000, 5000, n_classes=6, random_state=0)
    >>> X.shape, X.dtype, np.bincount(y).size
    ((2000, 5000), dtype('float32'), 6)
    >>> bool(np.allclose(np.sqrt(X.multiply(X).sum(axis=1)), 1))
    True
    """
    if int(n_classes) < 2:
        raise ValueError(f"n_classes must be at least 2; got {n_classes!r}")
    n_documents, n_features = int(n_documents), int(n_features)
    n_tokens, n_classes = int(tokens_per_document), int(n_classes)
    rng = check_random_state(random_state)
    y = rng.randint(n_classes, size=n_documents)
    cdf = np.cumsum(1.0 / np.arange(1, n_features + 1) ** float(zipf_exponent))
    cdf /= cdf[-1]
    total = n_documents * n_tokens
    ranks = np.minimum(np.searchsorted(cdf, rng.random_sample(total)), n_features - 1)
    docs = np.repeat(np.arange(n_documents), n_tokens)
    # Each class's topic: the Zipf law over the words in an order of its own.
    topics = np.argsort(rng.random_sample((n_classes, n_features)), axis=1)
    topical = rng.random_sample(total) < float(topic_share)
    words = np.where(topical, topics[y[docs], ranks], ranks)
    columns = rng.permutation(n_features)[words]  # "alphabetical" order
    counts = sp.csr_matrix(
        (np.ones(total, dtype=np.float64), (docs, columns)),
        shape=(n_documents, n_features),
    )
    counts.sum_duplicates()
    counts.sort_indices()
    document_frequency = np.bincount(counts.indices, minlength=n_features)
    idf = np.log((1.0 + n_documents) / (1.0 + document_frequency)) + 1.0
    values = (1.0 + np.log(counts.data)) * idf[counts.indices]
    norms = np.sqrt(np.add.reduceat(values**2, counts.indptr[:-1]))
    values /= np.repeat(norms, np.diff(counts.indptr))
    X = sp.csr_matrix(
        (values.astype(dtype), counts.indices, counts.indptr),
        shape=(n_documents, n_features),
    )
    noisy = rng.random_sample(n_documents) < float(label_noise)
    y = np.where(noisy, rng.randint(n_classes, size=n_documents), y)
    return X, y
