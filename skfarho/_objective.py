"""The objective axis: what the outer loop minimizes, and which rows it reads.

An objective supplies the outer loss of the bilevel problem and the
(training, outer) row pairs it is evaluated on (as sparse-ho's ``criterion``).

- :class:`Validation`: the mean loss of held-out rows (a holdout split, K
  folds, or the ``X_val, y_val`` given to ``fit``);
- :class:`Evidence`: the negative log marginal likelihood of the model on the
  training rows themselves (no rows held out).

Adding an objective means one class here with ``name``, ``reads_training_rows``,
``splits``, ``extra_hyperparameters`` and ``outer_loss``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from skfarho._data import cv_splits, holdout_split
from skfarho.core.evidence import gaussian_neg_log_evidence, laplace_neg_log_evidence
from skfarho.core.models import linear_scores, squared_loss

MIN_HOLDOUT = 500
"""Fewest validation rows of a holdout; below, :data:`SMALL_DATA_FOLDS`-fold CV.
The mean loss of a few hundred held-out rows is noisy enough to move the learned
strength visibly: with 5 folds instead of holdouts of 85 to 375 rows, the test
log-loss of ``benchmarks/bench_vs_search.py`` fell on breast_cancer (0.0896 to
0.0878), digits (0.1212 to 0.1187), binary_digits and synthetic, and rose on
none (GridSearchCV's own default is 5 folds)."""
SMALL_DATA_FOLDS = 5


@dataclass(frozen=True)
class Validation:
    """Mean loss of the model on held-out rows.

    Parameters
    ----------
    validation_fraction : float
        Fraction held out when ``cv`` is None and no ``X_val`` is given, if
        that holds out at least :data:`MIN_HOLDOUT` rows; otherwise
        :data:`SMALL_DATA_FOLDS`-fold CV.
    cv : int, CV splitter, iterable or None
        Folds: the objective is the mean over folds.
    hyper_penalty : float
        Adds ``hyper_penalty * var(log_alpha)`` (shrinks per-feature strengths
        toward their mean).
    """

    validation_fraction: float = 0.25
    cv: object = None
    hyper_penalty: float = 0.0

    name = "validation loss"
    reads_training_rows = False

    def splits(self, y, y_val, random_state, stratify):
        """``[(train_rows, outer_rows)]``; outer rows index ``y_val`` if given."""
        if y_val is not None:
            return [(np.arange(len(y)), np.arange(len(y_val)))]
        if self.cv is None:
            if (math.ceil(self.validation_fraction * len(y)) < MIN_HOLDOUT
                    and _can_fold(y, SMALL_DATA_FOLDS, stratify)):
                return cv_splits(y, SMALL_DATA_FOLDS, random_state, stratify)
            return holdout_split(y, self.validation_fraction, random_state, stratify)
        return cv_splits(y, self.cv, random_state, stratify)

    def extra_hyperparameters(self, model):
        """Hyperparameters the objective learns besides those in ``learn``."""
        return ()

    def outer_loss(self, model):
        """``outer_loss(params, hparams, X, y, mask)``."""
        return _validation_loss(model, float(self.hyper_penalty))


def _can_fold(y, n_folds, stratify):
    if not stratify:
        return len(y) >= 2 * n_folds
    return np.bincount(np.unique(y, return_inverse=True)[1]).min() >= n_folds


@functools.lru_cache(maxsize=64)
def _validation_loss(model, hyper_penalty):
    def outer_loss(params, hparams, X, y, mask):
        losses = model.sample_loss(model.scores(params, X), y)
        value = jnp.sum(mask * losses) / jnp.sum(mask)
        if hyper_penalty:
            value = value + hyper_penalty * jnp.var(hparams["log_alpha"])
        return value

    return outer_loss


@dataclass(frozen=True)
class Evidence:
    """Negative log marginal likelihood (evidence) per training row.

    Computed on the training rows themselves: no rows are held out, and the
    final model is the one the outer loop evaluated. Laplace's approximation
    for a classifier (:func:`~skfarho.core.evidence.laplace_neg_log_evidence`),
    the exact Gaussian evidence with a learned noise precision for the squared
    loss (:func:`~skfarho.core.evidence.gaussian_neg_log_evidence`). Costs a
    dense Hessian of the ``p`` parameters per outer step: ``O(n p^2 + p^3)``;
    past :data:`~skfarho.core.evidence.MAX_PARAMS` parameters it raises.

    Parameters
    ----------
    n_outputs : int
        Weights per strength (classes of a multinomial model).
    shift_invariant : bool
        True for softmax scores with intercepts.
    """

    n_outputs: int = 1
    shift_invariant: bool = False

    name = "negative log evidence"
    reads_training_rows = True

    def splits(self, y, y_val, random_state, stratify):
        """All rows, both inner and outer."""
        if y_val is not None:
            raise ValueError('objective="evidence" is computed on the training '
                             "rows: pass no X_val, y_val.")
        rows = np.arange(len(y))
        return [(rows, rows)]

    def extra_hyperparameters(self, model):
        """Hyperparameters the objective learns besides those in ``learn``."""
        return ("noise_precision",) if model.sample_loss is squared_loss else ()

    def outer_loss(self, model):
        """``outer_loss(params, hparams, X, y, mask, rows)``."""
        # linear scores: the Hessian assembled from the data (several times
        # cheaper than jax.hessian, same value and gradients)
        linear = model.scores is linear_scores
        if model.sample_loss is squared_loss:
            return gaussian_neg_log_evidence(model.scores, model.feature_squares,
                                             weights_per_strength=self.n_outputs,
                                             linear=linear)
        return laplace_neg_log_evidence(
            model.scores, model.sample_loss, model.feature_squares,
            weights_per_strength=self.n_outputs,
            shift_invariant=self.shift_invariant, linear=linear)


def trained_rows(splits, n_rows):
    """Boolean mask of the rows some split trains on."""
    trained = np.zeros(n_rows, dtype=bool)
    for train, _ in splits:
        trained[train] = True
    return trained
