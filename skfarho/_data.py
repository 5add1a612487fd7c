"""Host-side data handling: validation splits, shape buckets, stacked folds.

:class:`FitData` owns the rows of a fit; the estimators ask it for the stacked
folds and for all rows, so that the dense arrays of today can become sparse or
sharded here without touching them.

Every inner problem (a holdout split, or each of K folds) is padded to a shape
bucket and stacked on a leading axis, so that one compiled program serves all
folds and all fits whose sizes fall in the same bucket.

Sparse input (any SciPy sparse format) stays sparse: :class:`FitData` keeps
one CSR copy, and each fold's rows become a
:class:`~skfarho.core.sparse.SparseMatrix` (a row subset, its stored entries
padded to a common :func:`nnz_bucket`), so that memory stays ``O(nnz + n + d)``
per fold and no dense copy of ``X`` is ever made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse
from sklearn.model_selection import (
    ShuffleSplit,
    StratifiedShuffleSplit,
    check_cv,
)

from skfarho.core.sparse import SparseMatrix


def bucket(n: int, minimum: int = 16) -> int:
    """The smallest size ``>= n`` of the form ``m * 2^k`` with ``m`` in 4..7.

    Padding wastes at most a quarter (a 5-fold training set of digits' 1,347
    rows, 1,078, pads to 1,280 rather than to 1,536 with half-power steps);
    sizes that differ by a row or two (CV folds, repeated fits) share a
    compiled program.

    Examples
    --------
    >>> [bucket(n) for n in (1, 17, 24, 25, 100, 455, 1078)]
    [16, 20, 24, 28, 112, 512, 1280]
    """
    n = max(int(n), minimum)
    step = 2 ** (math.floor(math.log2(n)) - 2)
    return -(-n // step) * step


def nnz_bucket(nnz: int, minimum: int = 64) -> int:
    """The smallest multiple ``>= nnz`` of an eighth of the power of two below it.

    The stored entries of a sparse fold are padded to it: at most an eighth
    wasted, and folds of nearly equal size share a compiled program.

    Examples
    --------
    >>> [nnz_bucket(n) for n in (1, 64, 65, 1000, 1024, 1025, 780_000)]
    [64, 64, 72, 1024, 1024, 1152, 786432]
    """
    nnz = max(int(nnz), minimum)
    step = max(2 ** (math.floor(math.log2(nnz)) - 3), 1)
    return -(-nnz // step) * step


def holdout_split(y, validation_fraction, random_state, stratify):
    """One (train, validation) split, stratified for classifiers."""
    n_samples = len(y)
    n_val = math.ceil(validation_fraction * n_samples)
    if stratify:
        n_classes = len(np.unique(y))
        needed = max(2 * n_classes, math.ceil(n_classes / validation_fraction))
        if n_val < n_classes or n_samples - n_val < n_classes:
            raise ValueError(
                f"The validation split needs at least {needed} samples for "
                f"{n_classes} classes with validation_fraction={validation_fraction}"
                f", got {n_samples} sample(s). Pass more data, raise "
                "validation_fraction, or give X_val and y_val to fit."
            )
        counts = np.bincount(np.unique(y, return_inverse=True)[1])
        if counts.min() >= 2:
            splitter = StratifiedShuffleSplit(
                1, test_size=n_val, random_state=random_state)
            return [next(splitter.split(np.zeros(n_samples), y))]
    if n_val < 1 or n_samples - n_val < 1:
        raise ValueError(
            f"The validation split needs at least 2 samples, got {n_samples} "
            "sample(s)."
        )
    splitter = ShuffleSplit(1, test_size=n_val, random_state=random_state)
    return [next(splitter.split(np.zeros(n_samples)))]


def cv_splits(y, cv, random_state, stratify):
    """The (train, validation) pairs of a CV splitter or a number of folds.

    A number of folds means what it means to scikit-learn (``check_cv``, and
    so ``GridSearchCV(cv=5)``): ``StratifiedKFold`` for classifiers, ``KFold``
    otherwise, unshuffled, so that a learned strength and a grid search's are
    chosen on the same folds (``random_state`` is not used then). Measured on
    ``benchmarks/bench_vs_search.py``'s wine: test log-loss 0.0160 with
    shuffled folds against the grid's 0.0106, 0.0093 with its folds.
    """
    if isinstance(cv, int | np.integer):
        if stratify:
            counts = np.bincount(np.unique(y, return_inverse=True)[1])
            if counts.min() < cv:
                raise ValueError(
                    f"cv={cv} needs at least {cv} samples of every class; the "
                    f"smallest class has {counts.min()}. Lower cv."
                )
        elif len(y) < cv:
            raise ValueError(f"cv={cv} needs at least {cv} samples, got {len(y)}.")
    splitter = check_cv(cv, y, classifier=stratify)
    return list(splitter.split(np.zeros((len(y), 1)), y))


class StackedFolds(NamedTuple):
    """Padded, stacked inner data ``(X, y, mask, rows)`` and outer data."""

    inner: tuple
    outer: tuple


def _pad_rows(indices, size):
    padded = np.zeros(size, dtype=np.int32)
    padded[: len(indices)] = indices
    mask = np.zeros(size)
    mask[: len(indices)] = 1.0
    return padded, mask


def take_rows(X, row_sets, size):
    """The rows ``row_sets[k]`` of ``X`` for every ``k``, padded to ``size`` rows
    and stacked on a leading axis.

    Dense ``X``: an array ``(K, size, d)`` (padding rows repeat row 0, masked
    by the caller). Sparse ``X``: a stacked
    :class:`~skfarho.core.sparse.SparseMatrix` whose padding rows are empty
    and whose stored entries are padded to the :func:`nnz_bucket` of the
    largest subset (no dense copy).

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> X = sp.csr_matrix(np.arange(6.0).reshape(3, 2))
    >>> stacked = take_rows(X, [[2, 0], [1]], size=4)
    >>> stacked
    SparseMatrix(shape=(4, 2), nnz=64, stacked (2,))
    >>> stacked[0].to_scipy().toarray().tolist()
    [[4.0, 5.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    """
    if not scipy.sparse.issparse(X):
        return np.stack([X[_pad_rows(rows, size)[0]] for rows in row_sets])
    subsets = [X[np.asarray(rows, dtype=np.intp)] for rows in row_sets]
    nnz = nnz_bucket(max(subset.nnz for subset in subsets))
    return SparseMatrix.stack([
        SparseMatrix.from_scipy(subset, (size, X.shape[1]), nnz)
        for subset in subsets])


def _stack_rows(X, y, row_sets, size):
    """``(X, y, mask, rows)`` of every row set, padded to ``size`` and stacked."""
    padded = [_pad_rows(rows, size) for rows in row_sets]
    rows = np.stack([rows for rows, _ in padded])
    return (take_rows(X, row_sets, size), y[rows],
            np.stack([mask for _, mask in padded]), rows)


def stack_folds(X, y, splits, X_val=None, y_val=None,
                outer_is_inner=False) -> StackedFolds:
    """Stack the training and validation rows of every split, padded to buckets.

    Training rows are padded to the bucket of the largest training set, not of
    all rows: the final fit on all rows (:func:`stack_all_rows`) is a program of
    its own anyway (one problem, not a batch of folds), and 5-fold training sets
    (80% of the rows) padded to the bucket of all rows carried up to half again
    as many rows through every inner and Hessian-vector product (breast_cancer
    341 -> 512, wine 106 -> 192). With ``X_val`` given, ``splits`` index
    training rows only and the validation rows come from ``X_val``. With
    ``outer_is_inner`` the outer data is the inner data itself (no copy of the
    outer rows is made).
    ``X`` (and ``X_val``) may be SciPy sparse: see :func:`take_rows`.
    """
    trains = [train for train, _ in splits]
    inner = _stack_rows(X, y, trains, bucket(max(len(train) for train in trains)))
    if outer_is_inner:
        return StackedFolds(inner, inner)
    val_source_X = X if X_val is None else X_val
    val_source_y = y if y_val is None else y_val
    val_size = bucket(max(len(val) for _, val in splits))
    outer = _stack_rows(val_source_X, val_source_y, [val for _, val in splits],
                        val_size)
    return StackedFolds(inner, outer[:3])


def stack_all_rows(X, y, copies=1):
    """All rows as one padded inner problem, repeated ``copies`` times."""
    return _stack_rows(X, y, [np.arange(len(y))] * copies, bucket(len(y)))


@dataclass(frozen=True)
class FitData:
    """The rows of a fit: training ``X, y`` and optional outer ``X_val, y_val``.

    Parameters
    ----------
    X : ndarray or scipy.sparse CSR matrix of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Encoded targets.
    X_val, y_val : ndarray or CSR matrix, optional
        Outer rows given to ``fit``; otherwise the outer rows are rows of ``X``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> data = FitData.from_validated(sp.random(5, 3, 0.5, "csc", random_state=0),
    ...                               np.arange(5.0))
    >>> data.sparse, data.X.format, data.rows([0, 2]).X.shape
    (True, 'csr', (2, 3))
    """

    X: np.ndarray | scipy.sparse.csr_matrix
    y: np.ndarray
    X_val: np.ndarray | scipy.sparse.csr_matrix | None = None
    y_val: np.ndarray | None = None

    @classmethod
    def from_validated(cls, X, y, X_val=None, y_val=None,
                       keep_sparse=True) -> FitData:
        """The fit data of validated inputs, float64.

        Dense inputs become arrays; sparse ones (any SciPy format) one CSR
        matrix each, converted once and never densified, or, with
        ``keep_sparse=False`` (models whose scores need dense inputs), dense
        arrays.
        """
        def convert(matrix):
            if not keep_sparse and scipy.sparse.issparse(matrix):
                matrix = matrix.toarray()
            return _float64(matrix)

        return cls(convert(X), y, None if X_val is None else convert(X_val), y_val)

    @property
    def n_rows(self) -> int:
        return len(self.y)

    @property
    def sparse(self) -> bool:
        """True when ``X`` is a SciPy sparse matrix (kept sparse throughout)."""
        return scipy.sparse.issparse(self.X)

    def folds(self, splits, outer_is_inner: bool = False) -> StackedFolds:
        """Stacked, padded folds; with ``outer_is_inner`` the outer data of each
        fold is its inner data ``(X, y, mask, rows)`` (objectives computed on the
        training rows).

        Raises a ValueError for sparse ``X`` with ``outer_is_inner``: the only
        objective on the training rows (the evidence) builds a dense Hessian.
        """
        if self.sparse and outer_is_inner:
            raise ValueError(
                'objective="evidence" builds a dense Hessian of all coefficients '
                "and does not take sparse X: use objective=\"validation\", or "
                "pass X.toarray() when n_features is small.")
        return stack_folds(self.X, self.y, splits, self.X_val, self.y_val,
                           outer_is_inner)

    def rows(self, indices) -> FitData:
        """The training rows ``indices`` (outer rows dropped)."""
        return FitData(self.X[indices], self.y[indices])

    def cleaned(self, keep) -> FitData:
        """The training rows ``keep`` joined by the outer rows (trusted, e.g. a
        clean validation set) as training rows: the data of the final model
        after label cleaning."""
        if self.X_val is None:
            return self.rows(keep)
        stack = scipy.sparse.vstack if self.sparse else np.vstack
        X = stack([self.X[keep], self.X_val])
        return FitData(X.tocsr() if self.sparse else X,
                       np.concatenate([self.y[keep], self.y_val]))

    def all_rows(self) -> tuple:
        """All training rows as one stacked inner problem."""
        return stack_all_rows(self.X, self.y)


def _float64(X):
    if scipy.sparse.issparse(X):
        return scipy.sparse.csr_matrix(X, dtype=np.float64)
    return np.asarray(X, dtype=np.float64)
