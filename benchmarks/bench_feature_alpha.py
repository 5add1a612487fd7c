"""Per-feature strengths that beat the grid (issue 11): the evidence recipe.

The recipe (:func:`evidence_feature_alpha`, NumPy in, NumPy out, no
scikit-learn), on standardized features, ``cv`` stratified folds of the
training rows:

1. one strength: a path of ``log_alpha`` from 8 down to -8 by 0.5 (warm
   starts), each fold's path stopped 3 values past its held-out optimum; the
   best mean held-out loss gives ``alpha*`` (a small grid search);
2. screening (``n >= d`` only): the 64 features with the largest Wald statistics
   ``|mu_j| / sd_j`` (Laplace posterior at ``alpha*``);
3. per-feature strengths (ARD) on them by maximizing the evidence of
   :mod:`skfarho.core.evidence` (``linear=True``): L-BFGS-B over ``log_alpha``
   in ``[LOG_ALPHA_MIN, LOG_ALPHA_MAX]`` on the exact implicit hypergradient
   (:class:`~skfarho.core.Implicit`), from ``alpha*``, ``ard_iter`` iterations;
   regression also learns the noise precision (started at 1 / CV MSE);
4. candidates scored by the same folds (steps 2-3 rerun on each fold's training
   rows): ``"ard"`` and ``"tau=t"`` (drop the features whose Wald statistic is
   at most ``t``, softmax: class-centred chi-square mapped to a normal quantile;
   re-solve with the others' strengths fixed), against ``"single=<log_alpha>"``;
   a per-feature candidate is chosen only when it beats the best single
   strength by more than one standard error of the paired fold differences;
5. the chosen candidate refitted on all training rows.

Compared, on the same (stratified) 75/25 train/test split per seed,
standardized with the training statistics:

- ``grid``: ``GridSearchCV(LogisticRegression, 30 C in [1e-4, 1e4], cv=5,
  scoring="neg_log_loss", n_jobs=-1)`` (the single-strength fit);
- ``l1``: ``LogisticRegressionCV(penalty="l1", solver="liblinear", Cs=30 in
  [1e-3, 10], cv=5, scoring="neg_log_loss", n_jobs=-1)`` (500-feature problem
  only: liblinear spends minutes on ``C > 10``, which is never chosen);
- ``evidence``: the recipe; ``evidence-single`` and ``evidence-ard`` are its
  steps 1 and 3 alone on all training rows (diagnostics, not timed apart);
- regression: ``ARDRegression()``, ``RidgeCV(alphas=30 in [1e-4, 1e4])``.

Data: ``synthetic500`` = ``make_classification(n_samples=2000, n_features=500,
n_informative=20, n_redundant=0, random_state=seed)``; breast_cancer, wine,
digits, binary_digits (``digit >= 5``) and diabetes from
:mod:`skfarho._comparison` (split ``random_state=seed``);
``regression500`` = ``make_regression(n_samples=300, n_features=500,
n_informative=20, noise=10, random_state=seed)``. Medians over seeds.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_feature_alpha.py
    python benchmarks/bench_feature_alpha.py --datasets synthetic500 --seeds 0

OpenBLAS's threads make LAPACK 40x slower on a loaded 2-core machine (a
513 x 513 Cholesky: 0.4 s instead of 0.01 s); the script sets
``OPENBLAS_NUM_THREADS=1`` unless it is set.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
import scipy.stats  # noqa: E402
from machine import machine_info  # noqa: E402

from skfarho._problem import regularized_loss  # noqa: E402
from skfarho.core import (  # noqa: E402
    CG,
    BilevelProblem,
    HostImplicit,
    Implicit,
    ImplicitWarmStart,
    float64_scope,
)
from skfarho.core.evidence import (  # noqa: E402
    gaussian_neg_log_evidence,
    laplace_neg_log_evidence,
    posterior_precision,
)
from skfarho.core.models import (  # noqa: E402
    binary_log_loss,
    coef_squares,
    linear_model,
    linear_scores,
    multinomial_log_loss,
    squared_loss,
)

RESULTS = Path(__file__).resolve().parent / "results"
LOG_ALPHA_MIN, LOG_ALPHA_MAX = -10.0, 12.0
TAUS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
SINGLE_GRID = tuple(np.arange(-8.0, 8.25, 0.5))  # log alpha, CV candidates
CLASSIFICATION = ("synthetic500", "breast_cancer", "wine", "digits", "binary_digits")
REGRESSION = ("regression500", "diabetes")


# ---- the recipe ----------------------------------------------------------------
def _loss(task, n_outputs):
    if task == "regression":
        return squared_loss
    return binary_log_loss if n_outputs == 1 else multinomial_log_loss


@functools.cache
def _problem(task, n_outputs):
    """The estimators' inner loss with the evidence as outer loss."""
    loss = _loss(task, n_outputs)
    if task == "regression":
        outer = gaussian_neg_log_evidence(linear_scores, coef_squares, linear=True)
    else:
        outer = laplace_neg_log_evidence(
            linear_scores, loss, coef_squares, weights_per_strength=n_outputs,
            shift_invariant=n_outputs > 1, linear=True)
    return BilevelProblem(inner_loss=regularized_loss(linear_model(loss)),
                          outer_loss=outer, init_params=lambda h: h["w0"])


@functools.cache
def _compiled(problem, method):
    def call(h, data, warm, fixed):
        return method(problem, h, data, data, warm, fixed=fixed)

    return jax.jit(call) if method.traceable else call


# softmax's singular inner Hessian rules out a Cholesky solve: CG everywhere
# traced: per evaluation 0.16 s against the host-side solve's 0.6 s (n = 1500,
# d = 500); both compile in 5-6 s
_METHOD = Implicit(CG(maxiter=1000), tol=1e-7, max_inner_iter=3000)
_REFIT = HostImplicit(tol=1e-7, max_inner_iter=3000)


def _bucket(k):
    """Column counts are padded to powers of two (16, 32, ...): few compilations."""
    return max(16, 1 << (int(k) - 1).bit_length())


class _Data:
    """Rows padded to ``n_rows`` (mask 0), columns ``columns`` padded to a bucket."""

    def __init__(self, X, y, task, n_outputs, columns, n_rows):
        n, k = len(X), len(columns)
        self.width = _bucket(k)
        Xp = np.zeros((n_rows, self.width))
        Xp[:n, :k] = X[:, columns]
        yp = np.zeros(n_rows)
        yp[:n] = y
        labels = jnp.asarray(yp, jnp.int32 if n_outputs > 1 else jnp.float64)
        self.arrays = (jnp.asarray(Xp), labels, jnp.asarray(np.arange(n_rows) < n,
                                                            jnp.float64),
                       jnp.arange(n_rows))
        self.columns, self.n_outputs = np.asarray(columns), n_outputs

    def zeros(self):
        shape = (self.width,) if self.n_outputs == 1 else (self.width, self.n_outputs)
        return {"coef": jnp.zeros(shape), "intercept": jnp.zeros(shape[1:])}

    def log_alpha(self, values):
        padded = np.full(self.width, LOG_ALPHA_MAX)
        padded[:len(self.columns)] = values
        return jnp.asarray(padded)


class _Model:
    """A fitted linear model on ``columns`` with its strengths (NumPy)."""

    def __init__(self, data, params, log_alpha, log_beta, task):
        k = len(data.columns)
        self.data, self.task, self.columns = data, task, data.columns
        self.params = jax.tree_util.tree_map(np.asarray, params)
        self.coef, self.intercept = self.params["coef"][:k], self.params["intercept"]
        self.log_alpha, self.log_beta = np.asarray(log_alpha), log_beta

    def hparams(self):
        h = {"log_alpha": self.data.log_alpha(self.log_alpha)}
        if self.task == "regression":
            h["log_noise_precision"] = jnp.asarray(self.log_beta)
        return h

    @functools.cached_property
    def covariance(self):
        """Laplace covariance of ``(coef[:k], intercept)``, raveled."""
        K, width, k = self.data.n_outputs, self.data.width, len(self.columns)
        loss = _loss(self.task, K)
        precision = posterior_precision(linear_scores, loss, coef_squares,
                                        shift_invariant=K > 1 and self.task !=
                                        "regression", linear=True)
        H = np.asarray(jax.jit(precision)(self.params, self.hparams(),
                                          *self.data.arrays[:3]))
        if self.task == "regression":
            H = H * np.exp(self.log_beta)
        keep = np.r_[np.arange(k * K), width * K + np.arange(K)]
        return np.linalg.inv(H)[np.ix_(keep, keep)]

    def wald_z(self):
        """Per kept feature, ``|mu| / sd`` (softmax: centred chi-square as a z)."""
        K, k = self.data.n_outputs, len(self.columns)
        variances = np.diag(self.covariance)[:k * K]
        if K == 1:
            return np.abs(self.coef) / np.sqrt(variances)
        centre = np.eye(K) - 1.0 / K
        z = np.empty(k)
        for j in range(k):
            block = self.covariance[j * K:(j + 1) * K, j * K:(j + 1) * K]
            mean = centre @ self.coef[j]
            stat = mean @ np.linalg.pinv(centre @ block @ centre, hermitian=True) @ mean
            z[j] = scipy.stats.norm.isf(scipy.stats.chi2.sf(stat, K - 1) / 2)
        return z

    def predict(self, X, moderated=False):
        """Probabilities (classification) or predictions (regression)."""
        Xc = X[:, self.columns]
        scores = Xc @ self.coef + self.intercept
        if self.task == "regression":
            return scores
        if self.data.n_outputs > 1:
            scores = scores - scores.max(axis=1, keepdims=True)
            e = np.exp(scores)
            return e / e.sum(axis=1, keepdims=True)
        if moderated:
            design = np.c_[Xc, np.ones(len(X))]
            variance = np.einsum("ij,jk,ik->i", design, self.covariance, design)
            scores = scores / np.sqrt(1.0 + np.pi * variance / 8.0)
        return 1.0 / (1.0 + np.exp(-scores))


def _maximize(data, task, log_alpha0, log_beta0, per_feature, maxiter, counter):
    """Maximize the evidence over ``log_alpha`` (one or per feature) and, for
    regression, ``log_noise_precision``: L-BFGS-B on the implicit hypergradient."""
    k = len(data.columns)
    problem = _problem(task, data.n_outputs)
    call = _compiled(problem, _METHOD)
    fixed = {"w0": data.zeros()}
    state = {"warm": None}
    regression = task == "regression"

    def unpack(vector):
        values = vector[:k] if per_feature else np.full(k, vector[0])
        hparams = {"log_alpha": data.log_alpha(values)}
        if regression:
            hparams["log_noise_precision"] = jnp.asarray(vector[-1])
        return values, hparams

    def fun(vector):
        _, hparams = unpack(vector)
        if state["warm"] is None:
            state["warm"] = _METHOD.init_warm_start(problem, hparams, data.arrays,
                                                    fixed)
        result = call(hparams, data.arrays, state["warm"], fixed)
        state["warm"], state["x"] = result.warm_start, vector.copy()
        counter["evaluations"] += 1
        grad = np.asarray(result.grad["log_alpha"], np.float64)[:k]
        grad = grad if per_feature else np.array([grad.sum()])
        if regression:
            grad = np.r_[grad, float(result.grad["log_noise_precision"])]
        return float(result.value), grad

    start = np.broadcast_to(np.asarray(log_alpha0, np.float64), (k,))
    start = start.copy() if per_feature else np.array([start.mean()])
    bounds = [(LOG_ALPHA_MIN, LOG_ALPHA_MAX)] * len(start)
    if regression:
        start, bounds = np.r_[start, log_beta0], bounds + [(-30.0, 30.0)]
    found = scipy.optimize.minimize(fun, start, jac=True, method="L-BFGS-B",
                                    bounds=bounds,
                                    options={"maxiter": maxiter, "gtol": 1e-6})
    if not np.array_equal(found.x, state["x"]):
        fun(found.x)
    values, _ = unpack(found.x)
    log_beta = float(found.x[-1]) if regression else None
    return _Model(data, state["warm"].params, values, log_beta, task)


@functools.cache
def _traced_solve(problem):
    return jax.jit(lambda h, data, w0: _METHOD.solve_inner(problem, h, data,
                                                           fixed={"w0": w0}))


def _refit(X, y, task, n_outputs, columns, log_alpha, log_beta, n_rows, warm=None,
           traced=False, data=None):
    """The inner problem on ``columns`` with fixed strengths, from ``warm`` (a
    model on the same columns) when given: SciPy's L-BFGS-B (quick to compile,
    for the many small shapes) or, ``traced``, optax's (quick to run)."""
    if data is None:
        data = _Data(X, y, task, n_outputs, columns, n_rows)
    hparams = {"log_alpha": data.log_alpha(log_alpha)}
    problem = _problem(task, n_outputs)
    if traced:
        start = data.zeros() if warm is None else warm.params
        params = _traced_solve(problem)(hparams, data.arrays, start)
    else:
        start = None if warm is None else ImplicitWarmStart(warm.params, None)
        params = _REFIT.solve_inner(problem, hparams, data.arrays, start,
                                    fixed={"w0": data.zeros()})
    return _Model(data, params, log_alpha, log_beta, task)


def _loss_value(task, n_outputs, model, X, y, moderated):
    prediction = model.predict(X, moderated)
    if task == "regression":
        return float(np.mean((prediction - y) ** 2))
    p = np.clip(prediction, 1e-15, 1 - 1e-15)
    if n_outputs == 1:
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(-np.mean(np.log(p[np.arange(len(y)), y.astype(int)])))


def _folds(y, cv, seed, task):
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    groups = np.unique(y) if task == "classification" else [None]
    for group in groups:
        rows = np.flatnonzero(y == group) if group is not None else np.arange(len(y))
        rows = rng.permutation(rows)
        fold[rows] = (np.arange(len(rows)) + rng.integers(cv)) % cv
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(cv)]


def _single_path(X, y, task, K, log_beta, n_rows, grid, held_out=None,
                 patience=3):
    """One strength for every feature along ``grid`` (``log_alpha``), strong to
    weak with warm starts: ``{"single=<log_alpha>": model}``. With ``held_out =
    (X, y)``, also the held-out losses, and the path stops ``patience`` values
    past its best."""
    data = _Data(X, y, task, K, np.arange(X.shape[1]), n_rows)
    models, losses, previous, best, since = {}, {}, None, np.inf, 0
    for value in sorted(grid, reverse=True):
        previous = _refit(X, y, task, K, data.columns, np.full(X.shape[1], value),
                          log_beta, n_rows, previous, traced=True, data=data)
        name = f"single={value:g}"
        models[name] = previous
        if held_out is None:
            continue
        losses[name] = _loss_value(task, K, previous, *held_out, False)
        best, since = (losses[name], 0) if losses[name] < best else (best, since + 1)
        if since >= patience:
            break
    return models if held_out is None else (models, losses)


def _candidate_losses(X, y, task, K, ard, taus, n_rows, held_out, moderated):
    """Held-out loss of the ARD fit and of its pruned refits."""
    models = {"ard": ard}
    z = ard.wald_z()
    for tau in taus:
        keep = np.flatnonzero(z > tau)
        models[f"tau={tau}"] = _refit(X, y, task, K, ard.columns[keep],
                                      ard.log_alpha[keep], ard.log_beta, n_rows)
    return {name: _loss_value(task, K, model, *held_out, moderated)
            for name, model in models.items()}


def _choose(fold_losses, best_single):
    """The best per-feature candidate if it beats the best single strength by
    more than one standard error of their paired per-fold difference, else the
    single strength (the simpler model)."""
    others = [name for name in fold_losses if not name.startswith("single=")]
    best = min(others, key=lambda name: fold_losses[name].mean())
    difference = fold_losses[best] - fold_losses[best_single]
    error = difference.std(ddof=1) / np.sqrt(len(difference))
    return best if difference.mean() < -error else best_single


def _screen(model, size):
    """The ``size`` columns of ``model`` with the largest Wald statistics, in order."""
    if len(model.columns) <= size:
        return model.columns
    top = np.argsort(-model.wald_z(), kind="stable")[:size]
    return model.columns[np.sort(top)]


def evidence_feature_alpha(X, y, *, task="classification", cv=5, taus=TAUS,
                           ard_iter=None, screen="auto", single_grid=SINGLE_GRID,
                           moderated=False, random_state=0):
    """Per-feature L2 strengths by the evidence, one global setting by K-fold CV.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Standardized features.
    y : ndarray of shape (n,)
        Labels (any values) or targets.
    task : {"classification", "regression"}
    cv : int, default=5
        Folds of the global-setting choice.
    taus : tuple of float
        Pruning thresholds tried.
    ard_iter : int, optional
        L-BFGS-B iterations over the per-feature strengths (full data and folds);
        default 10 for classification (30 changed no test loss and took 5x the
        time on digits), 30 for regression (with all 500 features and no
        screening, 10 iterations stop far from the optimum).
    single_grid : tuple of float
        ``log_alpha`` values of the one-strength candidates (besides the
        evidence's own).
    screen : int, None or "auto", default="auto"
        Per-feature strengths are learned for the ``screen`` features with the
        largest Wald statistics under the CV-chosen single strength (the others
        are dropped); None: all features; "auto": 64 when ``n >= d``, else all
        (with fewer rows than features the one-strength fit ranks features
        badly: on ``regression500`` 15 of the 20 informative features made the
        top 64, test MSE 8,000 instead of 230).
    moderated : bool, default=False
        Score (and predict, binary only) with moderated probabilities.
    random_state : int, default=0
        Seed of the folds.

    Returns
    -------
    dict
        ``log_alpha`` (d,) learned strengths (``inf`` for dropped features),
        ``coef`` (d,) or (d, K), ``intercept``, ``log_noise_precision``
        (regression), ``setting`` (the chosen candidate), ``cv_loss`` (candidate
        -> mean CV loss), ``kept`` (number of features), ``model`` (the fitted
        model, for ``predict``), ``single``/``ard`` (steps 1 and 2 on all rows,
        diagnostics), ``evaluations`` (hypergradient evaluations), ``classes``,
        ``n_outputs``.
    """
    classification = task == "classification"
    classes = np.unique(y) if classification else None
    K = (1 if len(classes) == 2 else len(classes)) if classification else 1
    target = np.searchsorted(classes, y) if classification else np.asarray(y, float)
    n, d = X.shape
    if screen == "auto":
        screen = 64 if n >= d else None
    if ard_iter is None:
        ard_iter = 10 if classification else 30
    size = d if screen is None else screen
    counter = {"evaluations": 0}
    folds = _folds(target, cv, random_state, task)
    log_beta = None if classification else -np.log(np.var(target))
    # 1. one strength by CV along a path (strong to weak, stopped early per fold)
    paths, fold_losses = [], {}
    for train, held_out in folds:
        models, losses = _single_path(X[train], target[train], task, K, log_beta,
                                      n, single_grid, (X[held_out], target[held_out]))
        paths.append(models)
        for name, loss in losses.items():
            fold_losses.setdefault(name, []).append(loss)
    # a value some fold's path stopped before is not compared
    fold_losses = {name: np.asarray(values) for name, values in fold_losses.items()
                   if len(values) == cv}
    best_single = min(fold_losses, key=lambda name: fold_losses[name].mean())
    log_alpha_single = float(best_single.split("=")[1])
    if not classification:  # start the noise precision at 1 / (CV MSE)
        log_beta = -np.log(fold_losses[best_single].mean())

    # 2. per-feature strengths by the evidence on the screened features
    def ard_fit(rows, single_fit):
        columns = _screen(single_fit, size)
        data = _Data(X[rows], target[rows], task, K, columns, n)
        return _maximize(data, task, log_alpha_single, log_beta, True, ard_iter,
                         counter)

    # 3. pruning thresholds by CV, next to the one-strength candidates
    for (train, held_out), models in zip(folds, paths, strict=True):
        losses = _candidate_losses(X[train], target[train], task, K,
                                   ard_fit(train, models[best_single]), taus, n,
                                   (X[held_out], target[held_out]), moderated)
        for name, loss in losses.items():
            fold_losses.setdefault(name, []).append(loss)
    fold_losses = {name: np.asarray(values) for name, values in fold_losses.items()}
    totals = {name: float(values.mean()) for name, values in fold_losses.items()}
    single = _single_path(X, target, task, K, log_beta, n, [log_alpha_single])[
        best_single]
    ard = ard_fit(np.arange(n), single)
    setting = _choose(fold_losses, best_single)
    if setting == "ard":
        model = ard
    elif setting.startswith("single="):
        value = float(setting.split("=")[1])
        model = _single_path(X, target, task, K, log_beta, n, [value])[setting]
    else:
        keep = np.flatnonzero(ard.wald_z() > float(setting.split("=")[1]))
        model = _refit(X, target, task, K, ard.columns[keep], ard.log_alpha[keep],
                       ard.log_beta, n)
    log_alpha = np.full(d, np.inf)
    log_alpha[model.columns] = model.log_alpha
    coef = np.zeros((d,) if K == 1 else (d, K))
    coef[model.columns] = model.coef
    return {"log_alpha": log_alpha, "coef": coef, "intercept": model.intercept,
            "log_noise_precision": model.log_beta, "setting": setting,
            "cv_loss": totals, "kept": len(model.columns), "model": model,
            "single": single, "ard": ard, "evaluations": counter["evaluations"],
            "classes": classes, "n_outputs": K}


# ---- the benchmark -------------------------------------------------------------
def load(name, seed):
    """Standardized train/test split of a data set (stratified for classifiers)."""
    from sklearn.datasets import make_classification, make_regression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from skfarho._comparison import load_dataset

    if name == "synthetic500":
        X, y = make_classification(n_samples=2000, n_features=500, n_informative=20,
                                   n_redundant=0, random_state=seed)
    elif name == "regression500":
        X, y = make_regression(n_samples=300, n_features=500, n_informative=20,
                               noise=10, random_state=seed)
    else:
        data = load_dataset(name)
        X, y = data.X, data.y
    classification = name in CLASSIFICATION
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=seed,
        stratify=y if classification else None)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _sklearn_loss(classification, model, X, y):
    from sklearn.metrics import log_loss, mean_squared_error

    if classification:
        return float(log_loss(y, model.predict_proba(X), labels=model.classes_))
    return float(mean_squared_error(y, model.predict(X)))


def run_baseline(method, X, y, X_test, y_test, classification):
    """Fit one scikit-learn baseline; ``(test loss, seconds, details)``."""
    from sklearn.linear_model import (
        ARDRegression,
        LogisticRegression,
        LogisticRegressionCV,
        RidgeCV,
    )
    from sklearn.model_selection import GridSearchCV

    grid = np.logspace(-4, 4, 30)
    start = time.perf_counter()
    if method == "grid":
        model = GridSearchCV(LogisticRegression(max_iter=2000), {"C": grid}, cv=5,
                             scoring="neg_log_loss", n_jobs=-1).fit(X, y)
        details = {"C": float(model.best_params_["C"])}
    elif method == "l1":
        model = LogisticRegressionCV(Cs=np.logspace(-3, 1, 30), penalty="l1",
                                     solver="liblinear", cv=5, scoring="neg_log_loss",
                                     n_jobs=-1, max_iter=1000).fit(X, y)
        details = {"C": float(model.C_[0]), "nonzero": int((model.coef_ != 0).sum())}
    elif method == "ard_regression":
        model = ARDRegression().fit(X, y)
        details = {"nonzero": int(np.sum(model.lambda_ < model.threshold_lambda))}
    elif method == "ridgecv":
        model = RidgeCV(alphas=grid).fit(X, y)
        details = {"alpha": float(model.alpha_)}
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - start
    return _sklearn_loss(classification, model, X_test, y_test), seconds, details


def run_recipe(X, y, X_test, y_test, classification, seed, args):
    """The recipe's rows: ``evidence`` (timed), its steps 1 and 2 (diagnostics)."""
    task = "classification" if classification else "regression"
    start = time.perf_counter()
    with float64_scope():
        result = evidence_feature_alpha(X, y, task=task, cv=args.cv,
                                        ard_iter=args.ard_iter, screen=args.screen,
                                        moderated=args.moderated, random_state=seed)
    seconds = time.perf_counter() - start
    K, classes = result["n_outputs"], result["classes"]
    target = np.searchsorted(classes, y_test) if classification else y_test
    rows = {}
    for name, model in (("evidence", result["model"]),
                        ("evidence-single", result["single"]),
                        ("evidence-ard", result["ard"])):
        with float64_scope():
            plug_in = _loss_value(task, K, model, X_test, target, False)
            moderated = (_loss_value(task, K, model, X_test, target, True)
                         if classification and K == 1 else None)
        rows[name] = {"loss": plug_in, "loss_moderated": moderated,
                      "seconds": seconds if name == "evidence" else None,
                      "kept": int(len(model.columns))}
    rows["evidence"].update(
        setting=result["setting"], evaluations=result["evaluations"],
        cv_loss={k: round(v, 5) for k, v in result["cv_loss"].items()})
    return rows


METHODS = {"classification": ("grid", "l1", "evidence"),
           "regression": ("ard_regression", "ridgecv", "evidence")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+",
                        default=list(CLASSIFICATION + REGRESSION))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of grid l1 ard_regression ridgecv evidence")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--ard-iter", type=int, default=None)
    parser.add_argument("--moderated", action="store_true")
    parser.add_argument("--screen", type=lambda v: v if v in ("auto", None) else (
                        None if v == "none" else int(v)), default="auto",
                        help="features given per-feature strengths (an int, none "
                        "for all, or auto)")
    parser.add_argument("--output", type=Path,
                        default=RESULTS / "feature_alpha.json")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    rows = []
    for name in args.datasets:
        classification = name in CLASSIFICATION
        methods = METHODS["classification" if classification else "regression"]
        if args.methods:
            methods = [m for m in methods if m in args.methods]
        if name != "synthetic500":
            methods = [m for m in methods if m != "l1"]
        for seed in args.seeds:
            X, X_test, y, y_test = load(name, seed)
            for method in methods:
                if method == "evidence":
                    for label, row in run_recipe(X, y, X_test, y_test,
                                                 classification, seed, args).items():
                        rows.append({"dataset": name, "seed": seed, "method": label,
                                     **row})
                        print(json.dumps(rows[-1]), flush=True)
                    continue
                loss, seconds, details = run_baseline(method, X, y, X_test, y_test,
                                                      classification)
                rows.append({"dataset": name, "seed": seed, "method": method,
                             "loss": loss, "seconds": seconds, **details})
                print(json.dumps(rows[-1]), flush=True)
    table = summary_table(rows)
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(
        {"benchmark": "feature_alpha", "machine": machine_info(),
         "config": {"cv": args.cv, "ard_iter": args.ard_iter, "taus": TAUS,
                    "screen": args.screen,
                    "moderated": args.moderated, "seeds": args.seeds},
         "rows": rows, "table": table}, indent=1))
    print(f"wrote {args.output}")


def summary_table(rows):
    """Markdown: per data set and method, losses per seed, median, median time."""
    lines = ["| data set | method | test loss per seed | median | vs grid / ridgecv "
             "| median s |", "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["dataset"], r["method"]) for r in rows))
    medians = {}
    for dataset, method in keys:
        mine = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
        medians[dataset, method] = statistics.median(r["loss"] for r in mine)
    for dataset, method in keys:
        mine = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
        losses = " / ".join(f"{r['loss']:.4f}" for r in mine)
        reference = medians.get((dataset, "grid"), medians.get((dataset, "ridgecv")))
        ratio = (f"{medians[dataset, method] / reference - 1:+.1%}"
                 if reference else "")
        times = [r["seconds"] for r in mine if r.get("seconds") is not None]
        seconds = f"{statistics.median(times):.1f}" if times else ""
        lines.append(f"| {dataset} | {method} | {losses} | "
                     f"{medians[dataset, method]:.4f} | {ratio} | {seconds} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
