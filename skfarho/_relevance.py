"""Per-feature L2 strengths by the evidence, one global setting by K-fold CV.

The default of ``learn="feature_alpha"`` (``objective="auto"`` or
``"evidence"``) for the one-output linear models (binary classifier, ridge) on
dense ``X`` with more rows than features and at most
:data:`~skfarho.core.evidence.MAX_PARAMS` coefficients (otherwise: the same
recipe on a diagonal posterior, :mod:`skfarho._relevance_sparse`). On
``cv`` folds of the training rows:

1. **one strength**: a path of ``log_alpha`` from 8 down to -8 by 0.5 (warm
   starts, strong to weak), each fold's path stopped 3 values past its
   held-out optimum; the best mean held-out loss gives ``alpha*``;
2. **screening** (``n >= d`` only): the :data:`SCREEN` features with the largest
   Wald statistics ``|mu_j| / sd_j`` of the Laplace posterior at ``alpha*``;
3. **per-feature strengths** (automatic relevance determination) on them, by
   maximizing the evidence (:mod:`skfarho.core.evidence`): SciPy's L-BFGS-B over
   ``log_alpha`` on the exact implicit hypergradient
   (:class:`~skfarho.core.Implicit`), from ``alpha*``; the squared loss also
   learns the noise precision;
4. **candidates scored on the folds** (steps 2-3 rerun on each fold's training
   rows): ``"ard"`` and ``"tau=t"`` (drop the features whose Wald statistic is
   at most ``t``, refit the others with their strengths) against the best
   single strength; a per-feature candidate is chosen only when it beats the
   single strength by more than one standard error of the paired per-fold
   differences (the simpler model otherwise: this is what keeps the defaults
   within a hair of a one-strength grid where per-feature strengths don't
   help);
5. the chosen candidate refitted on all training rows.

Why not per-feature strengths on a validation split: 500 strengths tuned on a
holdout fit the holdout's noise (test log-loss 0.67 against the grid's 0.59 on
a 500-feature problem), and a plain evidence maximization keeps about 30% of
pure-noise features; the pruning threshold chosen on held-out folds removes
them. Measured in ``benchmarks/bench_feature_alpha.py``.

Everything here is NumPy in, NumPy out (free of ``self``), over the model's
pure functions; only linear models (``linear_scores``) are supported.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import scipy.stats

from skfarho._objective import Evidence
from skfarho._problem import regularized_loss
from skfarho.core import CG, BilevelProblem, HostImplicit, Implicit, ImplicitWarmStart
from skfarho.core.compile_ahead import compiler_options as _compiler_options
from skfarho.core.evidence import posterior_precision
from skfarho.core.models import binary_log_loss, multinomial_log_loss, squared_loss

LOG_ALPHA_MIN, LOG_ALPHA_MAX = -10.0, 12.0
TAUS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
SINGLE_GRID = tuple(np.arange(-8.0, 8.25, 0.5))
SCREEN = 64

# softmax's singular inner Hessian rules out a Cholesky solve: CG everywhere.
# Traced: per evaluation 0.16 s against the host-side solve's 0.6 s (n = 1500,
# d = 500); both compile in 5-6 s.
_METHOD = Implicit(CG(maxiter=1000), tol=1e-7, max_inner_iter=3000)
_REFIT = HostImplicit(tol=1e-7, max_inner_iter=3000)


class FeatureStrengths(NamedTuple):
    """What :func:`learn_feature_strengths` returns (NumPy).

    Attributes
    ----------
    params : dict
        The chosen model's parameters on all features (zeros where dropped).
    log_alpha : ndarray of shape (n_features,)
        Its strengths; ``inf`` for dropped features.
    log_noise_precision : float or None
        Squared loss: the learned noise precision's log.
    setting : str
        ``"single"``, ``"ard"`` or ``"tau=<t>"`` (the diagonal recipe:
        ``"ard@<steps>"`` or ``"ard@<steps>,tau=<t>"``).
    cv_loss : dict
        Candidate name -> per-fold held-out losses.
    path : dict
        The final evidence maximization: ``"value"`` (negative log evidence per
        evaluation) and ``"log_alpha"`` (per evaluation, all features).
    """

    params: dict
    log_alpha: np.ndarray
    log_noise_precision: float | None
    setting: str
    cv_loss: dict
    path: dict


def _log_loss(scores, y):
    return np.logaddexp(0.0, scores) - y * scores


def _softmax_loss(scores, y):
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    return log_norm - shifted[np.arange(len(y)), y.astype(int)]


_NUMPY_LOSSES = {binary_log_loss: _log_loss, multinomial_log_loss: _softmax_loss,
                 squared_loss: lambda scores, y: 0.5 * (scores - y) ** 2}


def _bucket(k):
    """Column counts padded to powers of two (16, 32, ...): few compilations."""
    return max(16, 1 << (int(k) - 1).bit_length())


@functools.lru_cache(maxsize=16)
def _problem(model, n_outputs):
    evidence = Evidence(n_outputs, n_outputs > 1 and "intercept" in model.init(1, 2))
    return BilevelProblem(inner_loss=regularized_loss(model),
                          outer_loss=evidence.outer_loss(model),
                          init_params=lambda h: h["w0"])


@functools.lru_cache(maxsize=16)
def _compiled_hypergradient(problem):
    return jax.jit(lambda h, data, warm, fixed: _METHOD(problem, h, data, data, warm,
                                                        fixed=fixed),
                   compiler_options=_compiler_options())


@functools.lru_cache(maxsize=16)
def _compiled_solve(problem):
    return jax.jit(lambda h, data, w0: _METHOD.solve_inner(problem, h, data,
                                                           fixed={"w0": w0}),
                   compiler_options=_compiler_options())



class _Columns:
    """Rows padded to ``n_rows`` (mask 0), ``columns`` padded to a bucket."""

    def __init__(self, model, n_outputs, X, y, columns, n_rows):
        n, k = len(X), len(columns)
        self.model, self.n_outputs = model, n_outputs
        self.width = _bucket(k)
        padded = np.zeros((n_rows, self.width))
        padded[:n, :k] = X[:, columns]
        targets = np.zeros(n_rows)
        targets[:n] = y
        labels = jnp.asarray(targets, jnp.int32 if n_outputs > 1 else jnp.float64)
        self.arrays = (jnp.asarray(padded), labels,
                       jnp.asarray(np.arange(n_rows) < n, jnp.float64),
                       jnp.arange(n_rows))
        self.columns = np.asarray(columns)

    def zeros(self):
        return jax.tree_util.tree_map(jnp.asarray,
                                      self.model.init(self.width, self.n_outputs))

    def restrict(self, fit):
        """The parameters of ``fit`` (on a superset of these columns) on these
        columns, padded: a warm start."""
        position = {column: i for i, column in enumerate(fit.columns)}
        coef = np.zeros((self.width,) + fit.params["coef"].shape[1:])
        coef[:len(self.columns)] = fit.params["coef"][[position[c] for c in
                                                        self.columns]]
        return jax.tree_util.tree_map(jnp.asarray, {**fit.params, "coef": coef})

    def log_alpha(self, values):
        padded = np.full(self.width, LOG_ALPHA_MAX)
        padded[:len(self.columns)] = values
        return jnp.asarray(padded)


class _Fit:
    """A linear model fitted on some columns, with its strengths (NumPy)."""

    def __init__(self, data, params, log_alpha, log_beta):
        self.data, self.columns = data, data.columns
        self.params = jax.tree_util.tree_map(np.asarray, params)
        self.log_alpha, self.log_beta = np.asarray(log_alpha), log_beta

    @property
    def regression(self):
        return self.data.model.sample_loss is squared_loss

    def hparams(self):
        h = {"log_alpha": self.data.log_alpha(self.log_alpha)}
        if self.regression:
            h["log_noise_precision"] = jnp.asarray(np.float64(self.log_beta))
        return h

    def precision_call(self):
        """The jitted posterior precision and its arguments for this fit."""
        model, K = self.data.model, self.data.n_outputs
        program = _precision_program(
            model, K > 1 and not self.regression and "intercept" in self.params)
        return program, (self.params, self.hparams(), *self.data.arrays[:3])

    @functools.cached_property
    def covariance(self):
        """Laplace covariance of the kept coefficients (and intercepts), raveled."""
        K, width, k = self.data.n_outputs, self.data.width, len(self.columns)
        program, arguments = self.precision_call()
        H = np.asarray(program(*arguments))
        if self.regression:
            H = H * np.exp(self.log_beta)
        intercepts = np.arange(K) if "intercept" in self.params else np.arange(0)
        keep = np.r_[np.arange(k * K), width * K + intercepts]
        return np.linalg.inv(H)[np.ix_(keep, keep)]

    def wald_z(self):
        """Per kept feature, ``|mu| / sd`` (softmax: the class-centred chi-square
        statistic mapped to a normal quantile)."""
        K, k = self.data.n_outputs, len(self.columns)
        coef = self.params["coef"][:k]
        variances = np.diag(self.covariance)[:k * K]
        if K == 1:
            return np.abs(coef) / np.sqrt(variances)
        centre = np.eye(K) - 1.0 / K
        z = np.empty(k)
        for j in range(k):
            block = self.covariance[j * K:(j + 1) * K, j * K:(j + 1) * K]
            mean = centre @ coef[j]
            stat = mean @ np.linalg.pinv(centre @ block @ centre, hermitian=True) @ mean
            z[j] = scipy.stats.norm.isf(scipy.stats.chi2.sf(stat, K - 1) / 2)
        return z

    def held_out_loss(self, X, y):
        """Mean loss of the model on rows ``X, y`` (in NumPy: the held-out
        shapes vary by fold, and JAX would compile for each)."""
        k = len(self.columns)
        scores = X[:, self.columns] @ self.params["coef"][:k]
        scores = scores + self.params.get("intercept", 0.0)
        loss = self.data.model.sample_loss
        return float(np.mean(_NUMPY_LOSSES.get(loss, loss)(scores, y)))


def _maximize(data, log_alpha0, log_beta0, maxiter, start, path=None):
    """Maximize the evidence over per-feature ``log_alpha`` (and the squared
    loss's ``log_noise_precision``): L-BFGS-B on the implicit hypergradient,
    from the minimizer of ``start`` (the one-strength fit)."""
    k = len(data.columns)
    regression = data.model.sample_loss is squared_loss
    problem = _problem(data.model, data.n_outputs)
    call = _compiled_hypergradient(problem)
    fixed = {"w0": data.restrict(start)}
    state = {"warm": None}

    def hparams_of(vector):
        hparams = {"log_alpha": data.log_alpha(vector[:k])}
        if regression:
            hparams["log_noise_precision"] = jnp.asarray(vector[-1])
        return hparams

    def value_and_grad(vector):
        hparams = hparams_of(vector)
        if state["warm"] is None:
            state["warm"] = _METHOD.init_warm_start(problem, hparams, data.arrays,
                                                    fixed)
        result = call(hparams, data.arrays, state["warm"], fixed)
        state["warm"], state["x"] = result.warm_start, vector.copy()
        value = float(result.value)
        if not np.isfinite(value):
            raise FloatingPointError("The evidence became non-finite")
        if path is not None:
            path["value"].append(value)
            path["log_alpha"].append(vector[:k].copy())
        grad = np.asarray(result.grad["log_alpha"], np.float64)[:k]
        if regression:
            grad = np.r_[grad, float(result.grad["log_noise_precision"])]
        return value, grad

    start = np.full(k, float(log_alpha0))
    bounds = [(LOG_ALPHA_MIN, LOG_ALPHA_MAX)] * k
    if regression:
        start, bounds = np.r_[start, log_beta0], bounds + [(-30.0, 30.0)]
    found = scipy.optimize.minimize(value_and_grad, start, jac=True,
                                    method="L-BFGS-B", bounds=bounds,
                                    options={"maxiter": maxiter, "gtol": 1e-6})
    if not np.array_equal(found.x, state["x"]):
        value_and_grad(found.x)
    return _Fit(data, state["warm"].params, found.x[:k],
                float(found.x[-1]) if regression else None)


@functools.lru_cache(maxsize=16)
def _precision_program(model, shift_invariant):
    precision = posterior_precision(model.scores, model.sample_loss,
                                    model.feature_squares,
                                    shift_invariant=shift_invariant, linear=True)
    return jax.jit(precision, compiler_options=_compiler_options())


def _refit(data, log_alpha, log_beta, warm=None, traced=False):
    """The inner problem with fixed strengths, from ``warm`` (a fit on the same
    columns) when given: SciPy's L-BFGS-B (quick to compile, for the many
    small shapes) or, ``traced``, optax's (quick to run)."""
    hparams = {"log_alpha": data.log_alpha(log_alpha)}
    problem = _problem(data.model, data.n_outputs)
    if traced:
        start = data.zeros() if warm is None else warm.params
        params = _compiled_solve(problem)(hparams, data.arrays, start)
    else:
        start = None if warm is None else ImplicitWarmStart(warm.params, None)
        params = _REFIT.solve_inner(problem, hparams, data.arrays, start,
                                    fixed={"w0": data.zeros()})
    return _Fit(data, params, log_alpha, log_beta)


def _single_path(data, log_beta, grid, held_out=None, patience=3):
    """One strength for every column along ``grid`` (``log_alpha``), strong to
    weak with warm starts: ``{log_alpha: fit}``. With ``held_out = (X, y)``,
    also their held-out losses, and the path stops ``patience`` values past
    its best."""
    k = len(data.columns)
    fits, losses, previous, best, since = {}, {}, None, np.inf, 0
    for value in sorted(grid, reverse=True):
        previous = _refit(data, np.full(k, value), log_beta, previous, traced=True)
        fits[value] = previous
        if held_out is None:
            continue
        losses[value] = previous.held_out_loss(*held_out)
        best, since = (losses[value], 0) if losses[value] < best else (best, since + 1)
        if since >= patience:
            break
    return fits, losses


def _screen(fit, size):
    """The ``size`` columns of ``fit`` with the largest Wald statistics, in order."""
    if size is None or len(fit.columns) <= size:
        return fit.columns
    top = np.argsort(-fit.wald_z(), kind="stable")[:size]
    return fit.columns[np.sort(top)]


def _pruned(ard, tau, X, y, n_rows):
    """``ard`` without the features whose Wald statistic is at most ``tau``."""
    keep = np.flatnonzero(ard.wald_z() > tau)
    data = _Columns(ard.data.model, ard.data.n_outputs, X, y, ard.columns[keep],
                    n_rows)
    return _refit(data, ard.log_alpha[keep], ard.log_beta)


def best_single(per_value, n_splits, regression, log_beta):
    """The one strength of the CV path: the value with the lowest mean held-out
    loss among those every fold's path reached (a fold's path may stop early);
    its per-fold losses; and for the squared loss the noise precision's start,
    1 / (2 x its CV half-MSE), else ``log_beta`` unchanged."""
    complete = {value: np.asarray(losses) for value, losses in per_value.items()
                if len(losses) == n_splits}
    best = min(complete, key=lambda value: complete[value].mean())
    if regression:
        log_beta = -np.log(2.0 * complete[best].mean())
    return best, complete[best], log_beta


def _choose(fold_losses, single):
    """The best per-feature candidate if it beats the single strength by more
    than one standard error of their paired per-fold differences, else
    ``"single"`` (the simpler model)."""
    others = [name for name in fold_losses if name != "single"]
    best = min(others, key=lambda name: fold_losses[name].mean())
    difference = fold_losses[best] - fold_losses[single]
    error = difference.std(ddof=1) / np.sqrt(len(difference))
    return best if difference.mean() < -error else "single"


def learn_feature_strengths(model, X, y, *, n_outputs, splits, taus=TAUS,
                            ard_iter=None, screen="auto",
                            single_grid=SINGLE_GRID) -> FeatureStrengths:
    """Per-feature L2 strengths of a linear model by the evidence, the pruning
    threshold and the single-or-per-feature choice by the folds ``splits``.

    Parameters
    ----------
    model : skfarho.core.models.Model
        A linear model (``linear_scores``).
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,)
        Encoded targets (class indices, or values for the squared loss).
    n_outputs : int
        Scores per row (classes of a multinomial model, else 1).
    splits : list of (train, held_out) index arrays
        The folds that choose the global settings.
    taus : tuple of float
        Pruning thresholds tried.
    ard_iter : int, optional
        L-BFGS-B iterations of each evidence maximization; default 10 for a
        classifier (30 changed no test loss and took 5x the time on digits),
        30 for the squared loss (with all 500 features of ``regression500``
        10 stop far from the optimum).
    screen : int, None or "auto"
        Per-feature strengths are learned for the ``screen`` features with
        the largest Wald statistics at the single strength (the others are
        dropped); None: all; ``"auto"``: :data:`SCREEN` when ``n >= d``, else
        all (with fewer rows than features the one-strength fit ranks features
        badly: on ``regression500`` 15 of the 20 informative features made the
        top 64).
    single_grid : tuple of float
        ``log_alpha`` values of the one-strength path.
    """
    regression = model.sample_loss is squared_loss
    n, d = X.shape
    if screen == "auto":
        screen = SCREEN if n >= d else None
    if ard_iter is None:
        ard_iter = 30 if regression else 10
    all_columns = np.arange(d)
    log_beta = -np.log(max(float(np.var(y)), 1e-12)) if regression else None

    def columns_data(rows, columns):
        return _Columns(model, n_outputs, X[rows], y[rows], columns, n)

    # the screening's and the evidence's programs compile on other cores
    # during the one-strength path

    # 1. one strength by CV along a path (strong to weak, stopped early per fold)
    paths, per_value = [], {}
    for train, held_out in splits:
        fits, losses = _single_path(columns_data(train, all_columns), log_beta,
                                    single_grid, (X[held_out], y[held_out]))
        paths.append(fits)
        for value, loss in losses.items():
            per_value.setdefault(value, []).append(loss)
    log_alpha_single, single_losses, log_beta = best_single(
        per_value, len(splits), regression, log_beta)
    fold_losses = {"single": single_losses}

    # 2.-3. per-feature strengths on the screened columns; thresholds by CV
    def ard_fit(rows, single_fit, path=None):
        data = columns_data(rows, _screen(single_fit, screen))
        return _maximize(data, log_alpha_single, log_beta, ard_iter, single_fit,
                         path)

    for (train, held_out), fits in zip(splits, paths, strict=True):
        ard = ard_fit(train, fits[log_alpha_single])
        candidates = {"ard": ard}
        for tau in taus:
            candidates[f"tau={tau:g}"] = _pruned(ard, tau, X[train], y[train], n)
        for name, fit in candidates.items():
            fold_losses.setdefault(name, []).append(
                fit.held_out_loss(X[held_out], y[held_out]))
    fold_losses = {name: np.asarray(losses) for name, losses in fold_losses.items()}
    setting = _choose(fold_losses, "single")

    # 4. the chosen candidate on all rows
    rows = np.arange(n)
    fits, _ = _single_path(columns_data(rows, all_columns), log_beta,
                           [log_alpha_single])
    chosen = fits[log_alpha_single]
    path = {"value": [], "log_alpha": []}
    if setting != "single":
        ard = ard_fit(rows, chosen, path)
        chosen = (ard if setting == "ard" else
                  _pruned(ard, float(setting.split("=")[1]), X, y, n))
    log_alpha = np.full(d, np.inf)
    log_alpha[chosen.columns] = chosen.log_alpha
    k = len(chosen.columns)
    coef = np.zeros((d,) + chosen.params["coef"].shape[1:])
    coef[chosen.columns] = chosen.params["coef"][:k]
    params = {**chosen.params, "coef": coef}
    full_path = {"value": np.asarray(path["value"]),
                 "log_alpha": np.full((len(path["value"]), d), np.inf)}
    if path["value"]:
        full_path["log_alpha"][:, ard.columns] = np.asarray(path["log_alpha"])
    return FeatureStrengths(params, log_alpha, chosen.log_beta, setting,
                            fold_losses, full_path)
