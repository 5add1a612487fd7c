"""Host-side data handling: validation splits, shape buckets, stacked folds.

:class:`FitData` owns the rows of a fit; the estimators ask it for the stacked
folds and for all rows, so that the dense arrays of today can become sparse or
sharded here without touching them.

Every inner problem (a holdout split, or each of K folds) is padded to a shape
bucket and stacked on a leading axis, so that one compiled program serves all
folds and all fits whose sizes fall in the same bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sklearn.model_selection import (
    KFold,
    ShuffleSplit,
    StratifiedKFold,
    StratifiedShuffleSplit,
    check_cv,
)


def bucket(n: int, minimum: int = 16) -> int:
    """The smallest size ``>= n`` of the form ``2^k`` or ``3 * 2^(k-1)``.

    Padding wastes at most a third; sizes that differ by a row or two (CV folds,
    repeated fits) share a compiled program.

    Examples
    --------
    >>> [bucket(n) for n in (1, 17, 24, 25, 100, 455)]
    [16, 24, 24, 32, 128, 512]
    """
    n = max(int(n), minimum)
    power = 2 ** math.ceil(math.log2(n))
    return 3 * power // 4 if 3 * power // 4 >= n else power


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
    """The (train, validation) pairs of a CV splitter or a number of folds."""
    if isinstance(cv, int | np.integer):
        cls = StratifiedKFold if stratify else KFold
        if stratify:
            counts = np.bincount(np.unique(y, return_inverse=True)[1])
            if counts.min() < cv:
                raise ValueError(
                    f"cv={cv} needs at least {cv} samples of every class; the "
                    f"smallest class has {counts.min()}. Lower cv."
                )
        elif len(y) < cv:
            raise ValueError(f"cv={cv} needs at least {cv} samples, got {len(y)}.")
        cv = cls(cv, shuffle=True, random_state=random_state)
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


def stack_folds(X, y, splits, X_val=None, y_val=None,
                outer_is_inner=False) -> StackedFolds:
    """Stack the training and validation rows of every split, padded to buckets.

    Training rows are padded to the bucket of *all* rows, so that the final fit
    on all rows (:func:`stack_all_rows`) has the same shapes and reuses the
    compiled program. With ``X_val`` given, ``splits`` index training rows only
    and the validation rows come from ``X_val``. With ``outer_is_inner`` the
    outer data is the inner data itself (no copy of the outer rows is made).
    """
    train_size = bucket(len(y))
    val_source_X = X if X_val is None else X_val
    val_source_y = y if y_val is None else y_val
    val_size = bucket(max(len(val) for _, val in splits))
    inner, outer = [], []
    for train, val in splits:
        rows, mask = _pad_rows(train, train_size)
        inner.append((X[rows], y[rows], mask, rows))
        if outer_is_inner:
            continue
        val_rows, val_mask = _pad_rows(val, val_size)
        outer.append((val_source_X[val_rows], val_source_y[val_rows], val_mask))
    inner = tuple(np.stack(parts) for parts in zip(*inner, strict=True))
    if outer_is_inner:
        return StackedFolds(inner, inner)
    return StackedFolds(inner, tuple(np.stack(parts) for parts in zip(*outer,
                                                                      strict=True)))


def stack_all_rows(X, y, copies=1):
    """All rows as one padded inner problem, repeated ``copies`` times."""
    rows, mask = _pad_rows(np.arange(len(y)), bucket(len(y)))
    return tuple(np.repeat(part[None], copies, axis=0)
                 for part in (X[rows], y[rows], mask, rows))


@dataclass(frozen=True)
class FitData:
    """The rows of a fit: training ``X, y`` and optional outer ``X_val, y_val``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Encoded targets.
    X_val, y_val : ndarray, optional
        Outer rows given to ``fit``; otherwise the outer rows are rows of ``X``.
    """

    X: np.ndarray
    y: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @classmethod
    def from_validated(cls, X, y, X_val=None, y_val=None) -> FitData:
        """The fit data of validated inputs (sparse matrices are densified)."""
        return cls(_dense(X).astype(np.float64, copy=False), y,
                   None if X_val is None else _dense(X_val), y_val)

    @property
    def n_rows(self) -> int:
        return len(self.y)

    def folds(self, splits, outer_is_inner: bool = False) -> StackedFolds:
        """Stacked, padded folds; with ``outer_is_inner`` the outer data of each
        fold is its inner data ``(X, y, mask, rows)`` (objectives computed on the
        training rows)."""
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
        return FitData(np.vstack([self.X[keep], self.X_val]),
                       np.concatenate([self.y[keep], self.y_val]))

    def all_rows(self) -> tuple:
        """All training rows as one stacked inner problem."""
        return stack_all_rows(self.X, self.y)


def _dense(X):
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)
