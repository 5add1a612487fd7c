r"""Label-issue detection by learned per-example weights (data hyper-cleaning).

One weight ``s_i = sigmoid(logit_i)`` per noisy training row, on a bilevel
problem built for noisy labels (choices measured by
``benchmarks/bench_cleaning.py``):

- *cross-fitting*: the noisy rows are split into ``cv`` folds (stratified by the
  given label). Fold ``k`` trains the model on the other folds' rows, weighted
  by ``s``, and is scored on its own rows: every row is trained on in ``cv - 1``
  folds and scored by a model that never saw it. Trusted rows (``X_clean,
  y_clean``) are split into the same folds with weight 1, training rows of the
  other folds and outer rows of their own;
- *outer loss*: the weighted mean absolute error of the held-out rows,

  .. math::

      E_k = \frac{\sum_{j \in k} s_j\, (1 - p_{y_j}(x_j))}{\sum_{j \in k} s_j},

  bounded and symmetric, hence tolerant of symmetric noise in the outer rows
  themselves (Ghosh et al., AAAI 2017), where the log-loss rewards fitting it;
- *inner loss*: the weighted mean log-loss plus a strong L2 penalty
  ``alpha / (2 n) ||W||^2`` with ``alpha = detection_alpha * n * mean(var(X))``
  (``n`` training rows of a fold), so that the fold models cannot fit the flips;
- *one-shot ranking*: the exact implicit hypergradient ``g = dE / dlogit`` at
  uniform weights, averaged over folds: the influence of up-weighting row ``i``
  on the other rows' held-out error plus, through the weights of the outer
  rows, the row's own out-of-fold error.

The label quality is ``0.5 - 0.5 g / max|g|``. The number of issues is
estimated from the fold models' out-of-fold probabilities by the calibrated
confident joint (Northcutt et al., JAIR 2021); the rows of lowest quality up to
that count are the issues, and the weights ``sigmoid((quality - threshold) /
temperature)`` fall below 0.5 exactly on them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from skfarho._data import _pad_rows, bucket, stack_folds
from skfarho.core import Batched, BilevelProblem, HostImplicit, Implicit, float64_scope
from skfarho.core.models import linear_model, multinomial_log_loss

MODEL = linear_model(multinomial_log_loss)


class LabelIssues(NamedTuple):
    """What :func:`detect_label_issues` returns, one entry per row of ``X``.

    Attributes
    ----------
    weights : ndarray of shape (n_samples,)
        Example weights in ``[0, 1]``, ordered as ``quality``; below 0.5
        exactly on the issues.
    quality : ndarray of shape (n_samples,)
        Label quality in ``[0, 1]``: higher is more likely correct (the
        convention of cleanlab's ``get_label_quality_scores``).
    issues : ndarray of shape (n_samples,), dtype bool
        The rows flagged as mislabeled (as cleanlab's ``find_label_issues``).
    proba : ndarray of shape (n_samples, n_classes)
        Out-of-fold class probabilities of the fold models (cleanlab's
        ``pred_probs``: ``find_label_issues(y, proba)`` runs confident learning
        on them).
    """

    weights: np.ndarray
    quality: np.ndarray
    issues: np.ndarray
    proba: np.ndarray


class CleaningData(NamedTuple):
    """Inner and outer ``(X, y, mask, rows)``, one fold per entry of the leading
    axis, padded to buckets; ``fixed`` (``trusted``: 1 on clean rows' logits,
    ``log_alpha``, ``w0``); ``n_rows`` stacked rows ``[noisy; clean]``."""

    inner: tuple
    outer: tuple
    fixed: dict
    n_rows: int


def _weights(hparams, rows, mask):
    """``sigmoid(logit)`` on noisy rows, 1 on trusted rows, 0 on padding."""
    learned = jax.nn.sigmoid(hparams["sw_logit"][rows])
    return mask * jnp.where(jnp.asarray(hparams["trusted"])[rows] > 0, 1.0, learned)


def given_label_proba(scores, y):
    """Softmax probability of the given label, per row."""
    onehot = jax.nn.one_hot(y, scores.shape[-1], dtype=scores.dtype)
    return jnp.sum(jax.nn.softmax(scores) * onehot, axis=-1)


@functools.lru_cache(maxsize=16)
def cleaning_problem(model=MODEL) -> BilevelProblem:
    """Weighted regularized log-loss inside, weighted held-out MAE outside.

    ``model`` (a :class:`~skfarho.core.models.Model`) gives ``(n, K)`` scores
    read through a softmax; inner and outer data are ``(X, y, mask, rows)``.
    """

    def inner_loss(params, hparams, X, y, mask, rows):
        weights = _weights(hparams, rows, mask)
        data_term = jnp.sum(weights * model.loss(params, X, y)) / jnp.sum(weights)
        return data_term + model.penalty(params, hparams["log_alpha"]) / jnp.sum(mask)

    def outer_loss(params, hparams, X, y, mask, rows):
        weights = _weights(hparams, rows, mask)
        errors = 1.0 - given_label_proba(model.scores(params, X), y)
        return jnp.sum(weights * errors) / jnp.sum(weights)

    return BilevelProblem(inner_loss, outer_loss, lambda hparams: hparams["w0"])


def default_method(tol=1e-4):
    """Host-side implicit method on CPU, the traced one on accelerators; a loose
    tolerance (1e-4 ranks the benchmark's rows as 1e-6 does, 40% faster)."""
    if jax.default_backend() == "cpu":
        return Batched(HostImplicit(tol=tol))
    return Batched(Implicit(tol=tol))


@functools.lru_cache(maxsize=16)
def _traced(problem, method):
    return jax.jit(lambda hparams, inner, outer, fixed: method(
        problem, hparams, inner, outer, fixed=fixed))


def hypergradient(problem, method, hparams, data):
    """The batched method's result (jitted when traceable)."""
    if method.traceable:
        return _traced(problem, method)(hparams, data.inner, data.outer, data.fixed)
    return method(problem, hparams, data.inner, data.outer, fixed=data.fixed)


def _splits(y, y_clean, cv, random_state):
    """``cv`` (train, outer) pairs over the stacked rows ``[noisy; clean]``."""
    folds = list(StratifiedKFold(cv, shuffle=True, random_state=random_state)
                 .split(y, y))
    if y_clean is None:
        return folds
    counts = np.bincount(y_clean)
    splitter = StratifiedKFold if counts[counts > 0].min() >= cv else KFold
    clean = splitter(cv, shuffle=True, random_state=random_state).split(y_clean,
                                                                          y_clean)
    n = len(y)
    return [(np.r_[train, n + c_train], np.r_[val, n + c_val])
            for (train, val), (c_train, c_val) in zip(folds, clean, strict=True)]


def cleaning_data(X, y, X_clean=None, y_clean=None, *, n_classes, cv=5,
                  detection_alpha=0.02, random_state=None, model=MODEL):
    """Folds, padded stacks and fixed hyperparameters of the detection problem."""
    y_clean = None if X_clean is None or len(X_clean) == 0 else y_clean
    if y_clean is not None:
        X = np.vstack([X, np.asarray(X_clean, np.float64)])
        y = np.r_[y, np.asarray(y_clean, np.int32)]
    n_noisy = len(y) - (0 if y_clean is None else len(y_clean))
    splits = _splits(y[:n_noisy], y[n_noisy:] if y_clean is not None else None, cv,
                     random_state)
    folds = stack_folds(X, y, splits)
    outer_size = folds.outer[0].shape[1]
    outer_rows = np.stack([_pad_rows(val, outer_size)[0] for _, val in splits])
    n_fit = np.mean([len(train) for train, _ in splits])
    alpha = detection_alpha * n_fit * max(np.mean(np.var(X, axis=0)), 1e-12)
    trusted = np.zeros(bucket(len(y)))
    trusted[n_noisy:len(y)] = 1.0
    fixed = {"trusted": trusted, "log_alpha": np.log(alpha),
             "w0": model.init(X.shape[1], n_classes, random_state)}
    return CleaningData(folds.inner, (*folds.outer, outer_rows), fixed, len(y))


def estimated_issue_count(proba, y):
    """Number of label issues by the calibrated confident joint.

    A row counts when its most likely class among those whose probability
    reaches the class's threshold (its mean probability over the rows labelled
    with it) is not the given label; counts are rescaled per given class to the
    class's size.

    Examples
    --------
    >>> import numpy as np
    >>> proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.9, 0.1]])
    >>> estimated_issue_count(proba, np.array([0, 0, 1, 1]))
    1
    """
    classes = np.flatnonzero(np.bincount(y, minlength=proba.shape[1]))
    thresholds = np.full(proba.shape[1], np.inf)
    thresholds[classes] = [proba[y == c, c].mean() for c in classes]
    above = proba >= thresholds - 1e-12
    guess = np.argmax(np.where(above, proba, -1.0), axis=1)
    confident = above.any(axis=1)
    total = 0.0
    for c in classes:
        counted = confident & (y == c)
        if counted.any():
            total += (guess[counted] != c).mean() * (y == c).sum()
    return int(round(total))


def detect_label_issues(X, y, *, X_clean=None, y_clean=None, n_classes=None, cv=5,
                        detection_alpha=0.02, temperature=0.02, random_state=None,
                        method=None, model=MODEL) -> LabelIssues:
    """Flag mislabeled rows by the hypergradient of learned example weights.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows whose labels may be wrong (standardize the features first).
    y : ndarray of shape (n_samples,)
        Their labels, encoded ``0 .. n_classes - 1``.
    X_clean, y_clean : ndarray, optional
        Rows whose labels are trusted (the ``X_val, y_val`` of ``fit``): they
        train and score the fold models with weight 1 and are not ranked.
    n_classes : int, optional
        Number of classes; default: the largest label plus one.
    cv : int, default=5
        Cross-fitting folds.
    detection_alpha : float, default=0.02
        L2 strength of the fold models per training row and unit of feature
        variance: ``alpha = detection_alpha * n * mean(var(X))``.
    temperature : float, default=0.02
        Width of the weights' step around the threshold, in units of quality.
    random_state : int, optional
        Seeds the folds.
    method : hypergradient method, optional
        Batched implicit method; default :func:`default_method`.
    model : Model, default=linear_model(multinomial_log_loss)
        The fold models (``(n, n_classes)`` scores).

    Returns
    -------
    LabelIssues
        ``(weights, quality, issues, proba)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skfarho._cleaning import detect_label_issues
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)) + np.repeat([[3, 0], [0, 3], [-3, 0]], 100, 0)
    >>> y = np.repeat([0, 1, 2], 100)
    >>> y[:10] = 1  # ten rows of class 0 labelled 1
    >>> result = detect_label_issues(X, y, random_state=0)
    >>> bool(result.issues[:10].sum() >= 8), int(result.issues[10:].sum())
    (True, 0)
    >>> bool(np.all((result.weights < 0.5) == result.issues))
    True
    """
    X, y = np.asarray(X, np.float64), np.asarray(y, np.int32)
    n_classes = int(max(y.max(), -1 if y_clean is None else np.max(y_clean)) + 1
                    if n_classes is None else n_classes)
    data = cleaning_data(X, y, X_clean, y_clean, n_classes=n_classes, cv=cv,
                         detection_alpha=detection_alpha, random_state=random_state,
                         model=model)
    method = default_method() if method is None else method
    problem = cleaning_problem(model)
    with float64_scope():
        hparams = {"sw_logit": jnp.zeros(len(data.fixed["trusted"]))}
        result = hypergradient(problem, method, hparams, data)
        grad = np.asarray(result.grad["sw_logit"])[:len(y)]
        scores = np.asarray(jax.vmap(model.scores)(result.params, data.outer[0]))
    quality = 0.5 - 0.5 * grad / max(np.abs(grad).max(), np.finfo(float).tiny)
    proba = _out_of_fold_proba(scores, data)[:len(y)]
    count = estimated_issue_count(proba, y)
    order = np.argsort(quality, kind="stable")
    issues = np.zeros(len(y), dtype=bool)
    issues[order[:count]] = True
    if 0 < count < len(y):
        threshold = 0.5 * (quality[order[count - 1]] + quality[order[count]])
    else:
        threshold = np.inf if count else -np.inf
    weights = 1.0 / (1.0 + np.exp(-(quality - threshold) / temperature))
    return LabelIssues(weights, quality, issues, proba)


def _out_of_fold_proba(scores, data):
    """Each stacked row's softmax probabilities under the fold that held it out."""
    _, _, mask, rows = data.outer
    scores = scores - scores.max(axis=-1, keepdims=True)
    proba = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
    held_out = np.zeros((data.n_rows, scores.shape[-1]))
    held_out[rows[mask > 0]] = proba[mask > 0]
    return held_out
