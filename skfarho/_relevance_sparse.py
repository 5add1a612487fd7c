"""Per-feature L2 strengths on sparse or wide input, by a diagonal posterior.

The recipe of :mod:`skfarho._relevance` (one strength by CV, per-feature
strengths by the evidence, pruning thresholds and the single-or-per-feature
choice by the 1-SE rule on the folds) where its dense Hessians do not fit,
SciPy sparse ``X`` (never densified) or more than
:data:`~skfarho.core.evidence.MAX_PARAMS` coefficients, or do not help: at
least as many features as rows (where the dense recipe's evidence
maximization overfit: ``benchmarks/bench_feature_alpha.py``,
``regression500``), and softmax models (whose ``(d K)^2`` Hessians cost 2-5x
the time for no better test loss). Everything is NumPy and SciPy (no
compilation), memory ``O(nnz + n + d)``:

- the inner fits minimize the estimators' objective (mean loss plus
  ``sum_j alpha_j ||w_j||^2 / (2n)``) by SciPy's L-BFGS-B on sparse products;
- the posterior precision is approximated by its diagonal,
  ``H_jj = alpha_j + sum_i c_i x_ij^2`` (``c_i`` the loss's curvature in the
  scores, ``p (1 - p)`` for the logistic loss; one product
  ``(X * X).T @ c``), which gives the Wald statistics ``|mu_j| sqrt(H_jj)``;
- per-feature strengths by MacKay's fixed point on that evidence,
  ``gamma_j = K - alpha_j sum_k 1 / H_jjk`` (well-determined parameters),
  ``alpha_j = gamma_j / ||mu_j||^2``, each step a warm-started refit; the
  squared loss also updates its noise precision ``(n - sum gamma) / RSS``;
- for the squared loss on dense ``X`` (at most :data:`EXACT_RIDGE` rows or
  columns), exact fits and exact posterior variances instead of the diagonal,
  and a second run of MacKay steps from ARDRegression's starting point
  (``"ard-prior@t"``);
- candidates ``"single"``, ``"ard@t"`` and ``",tau=t"`` on the folds, chosen by
  :func:`skfarho._relevance._choose` (the single strength unless a
  per-feature candidate beats it by a standard error).

The diagonal ignores correlations between features, so it overstates how well
each coefficient is determined; the held-out choice against the single
strength is what keeps that from costing test loss.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse
import scipy.special
import scipy.stats
from threadpoolctl import threadpool_limits

from skfarho._relevance import (
    SINGLE_GRID,
    TAUS,
    FeatureStrengths,
    _choose,
    best_single,
)
from skfarho.core.models import binary_log_loss, multinomial_log_loss, squared_loss

LOG_ALPHA_MIN, LOG_ALPHA_MAX = -10.0, 12.0
ARD_STEPS = (1, 2, 4, 8)
PRIOR_STEPS = (4, 8, 16)
"""MacKay steps of the candidates started from ARDRegression's prior (exact
squared loss only): from that far a start the first steps are too few."""
KEEP_NEAR_BEST = 4
EXACT_RIDGE = 4000
"""The squared loss on dense ``X`` with at most this many rows or columns is
fitted by one linear solve (``O(min(n, d)^2 max(n, d))``) instead of L-BFGS-B."""
FTOL = 1e-11
"""L-BFGS-B's relative decrease at which the inner fits stop: against 1e-14,
17% fewer evaluations on the one-strength path (3000 x 15000, five folds),
every held-out loss equal to 4 decimals."""


def _binary(scores, y):
    p = scipy.special.expit(scores)
    losses = np.logaddexp(0.0, scores) - y * scores
    return losses, p - y, p * (1.0 - p)


def _multinomial(scores, y):
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(len(y))
    labels = y.astype(int)
    losses = log_norm - shifted[rows, labels]
    P = np.exp(shifted - log_norm[:, None])
    G = P.copy()
    G[rows, labels] -= 1.0
    return losses, G, P * (1.0 - P)


def _squared(scores, y):
    residual = scores - y
    return 0.5 * residual**2, residual, np.ones_like(residual)


_LOSSES = {binary_log_loss: _binary, multinomial_log_loss: _multinomial,
           squared_loss: _squared}


def supports(model) -> bool:
    """Whether :func:`learn_sparse_feature_strengths` takes ``model``'s loss."""
    return model.sample_loss in _LOSSES


class _Glm:
    """The linear model on rows ``X, y`` (sparse or dense, never densified)."""

    def __init__(self, X, y, loss, n_outputs, intercept):
        self.X, self.y, self.loss = X, y, _LOSSES[loss]
        self.K, self.intercept = n_outputs, intercept
        self.regression = loss is squared_loss
        self._squares = None

    @property
    def squares(self):
        """``X * X`` elementwise (sparse stays sparse)."""
        if self._squares is None:
            X = self.X
            self._squares = (X.multiply(X).tocsr() if scipy.sparse.issparse(X)
                             else X * X)
        return self._squares

    def columns(self, keep):
        """The model on the columns ``keep`` only."""
        return _Glm(self.X[:, keep], self.y, _loss_key(self.loss), self.K,
                    self.intercept)

    def unpack(self, theta):
        d, K = self.X.shape[1], self.K
        coef = theta[:d * K].reshape((d, K) if K > 1 else (d,))
        bias = theta[d * K:] if self.intercept else np.zeros(K)
        return coef, bias if K > 1 else bias[0]

    def scores(self, coef, bias):
        return self.X @ coef + bias

    def solve(self, log_alpha, start=None, tol=1e-9, maxiter=2000):
        """The minimizer of mean loss + ``sum_j alpha_j ||w_j||^2 / (2n)``
        (L-BFGS-B from ``start``, a parameter vector), in variables scaled by
        the square root of the Hessian's diagonal at ``start``: per-feature
        strengths spread over 22 units of ``log_alpha`` made the unscaled
        problem take 2000 iterations. The squared loss on dense ``X`` with
        at most :data:`EXACT_RIDGE` rows or columns is solved exactly."""
        n, d = self.X.shape
        if self.exact:
            return self._solve_ridge(np.exp(log_alpha))
        K = self.K
        alpha = np.exp(log_alpha)
        alpha = alpha[:, None] if K > 1 else alpha
        size = d * K + (K if self.intercept else 0)
        start = np.zeros(size) if start is None else start
        H, _, c = self.curvature(start, log_alpha)
        scale = [H.ravel()]
        if self.intercept:
            scale.append(np.atleast_1d(c.sum(axis=0)))
        scale = np.sqrt(np.maximum(np.concatenate(scale), 1e-12) / n)

        def value_and_grad(u):
            coef, bias = self.unpack(u / scale)
            losses, G, _ = self.loss(self.scores(coef, bias), self.y)
            value = losses.sum() + 0.5 * np.sum(alpha * coef**2)
            grad = [(self.X.T @ G + alpha * coef).ravel()]
            if self.intercept:
                grad.append(np.atleast_1d(G.sum(axis=0)))
            return value / n, np.concatenate(grad) / (n * scale)

        found = scipy.optimize.minimize(
            value_and_grad, start * scale, jac=True, method="L-BFGS-B",
            options={"maxiter": maxiter, "gtol": tol, "ftol": FTOL,
                     "maxcor": 20})
        return found.x / scale

    @property
    def exact(self):
        """Whether the squared loss is fitted, and its posterior variances
        computed, exactly (dense ``X``, at most :data:`EXACT_RIDGE` rows or
        columns)."""
        return (self.regression and not scipy.sparse.issparse(self.X)
                and min(self.X.shape) <= EXACT_RIDGE)

    def _centred(self):
        """``X, y`` centred when there is an intercept (which is unpenalized:
        it is the mean residual, and marginalizing it centres the data)."""
        if not self.intercept:
            return self.X, self.y, None, None
        x_mean, y_mean = self.X.mean(axis=0), self.y.mean()
        return self.X - x_mean, self.y - y_mean, x_mean, y_mean

    def _solve_ridge(self, alpha):
        """The squared loss's minimizer by one linear solve: on centred data,
        ``(X^T X + A) w = X^T y`` with ``n >= d``, else
        ``w = A^-1 X^T (I + X A^-1 X^T)^-1 y`` (Woodbury). L-BFGS-B took about
        400 iterations per fit on 200 x 300 problems."""
        X, y, x_mean, y_mean = self._centred()
        n, d = X.shape
        if n >= d:
            coef = scipy.linalg.solve(X.T @ X + np.diag(alpha), X.T @ y,
                                      assume_a="pos")
        else:
            scaled = X / alpha  # X A^-1
            coef = scaled.T @ scipy.linalg.solve(
                scaled @ X.T + np.eye(n), y, assume_a="pos")
        if not self.intercept:
            return coef
        return np.concatenate([coef, [y_mean - x_mean @ coef]])

    def _ridge_variances(self, alpha):
        """The diagonal of ``(X^T X + A)^-1`` (centred ``X``): the posterior
        variances in units of the noise variance, exactly. With ``d > n`` the
        diagonal of the precision says every coefficient is determined by
        ``n`` rows, when only ``n`` directions are: MacKay's updates from it
        never pruned (200 features, 120 rows, 8 informative: test MSE 10,046
        against ARDRegression's 66)."""
        X = self._centred()[0]
        n, d = X.shape
        if n >= d:
            factor = scipy.linalg.cho_factor(X.T @ X + np.diag(alpha))
            return np.diag(scipy.linalg.cho_solve(factor, np.eye(d)))
        scaled = X / alpha  # X A^-1
        inner = scipy.linalg.solve(scaled @ X.T + np.eye(n), scaled,
                                   assume_a="pos")
        return 1.0 / alpha - np.sum(scaled * inner, axis=0)

    def curvature(self, theta, log_alpha):
        """The posterior precision's diagonal ``H_jj`` (``(d,)`` or ``(d, K)``;
        for the exact squared loss, the inverses of the posterior variances),
        the data term's value (summed losses) and the per-row curvature at
        ``theta``."""
        coef, bias = self.unpack(theta)
        losses, _, c = self.loss(self.scores(coef, bias), self.y)
        alpha = np.exp(log_alpha)
        if self.exact:  # the inverses of the exact posterior variances
            return 1.0 / self._ridge_variances(alpha), float(losses.sum()), c
        H = self.squares.T @ c + (alpha[:, None] if self.K > 1 else alpha)
        return H, float(losses.sum()), c

    def held_out_loss(self, theta, X, y):
        coef, bias = self.unpack(theta)
        return float(np.mean(self.loss(X @ coef + bias, y)[0]))


def _loss_key(function):
    return next(key for key, value in _LOSSES.items() if value is function)


class _Fit:
    """Parameters on some columns of a :class:`_Glm`, with their strengths."""

    def __init__(self, glm, columns, theta, log_alpha, log_beta):
        self.glm, self.columns, self.theta = glm, columns, theta
        self.log_alpha, self.log_beta = log_alpha, log_beta

    def wald_z(self):
        """Per column ``|mu_j| sqrt(H_jj)`` (softmax: the class-centred
        statistic, chi-square with ``K - 1`` degrees, as a normal quantile)."""
        coef, _ = self.glm.unpack(self.theta)
        H = self.glm.curvature(self.theta, self.log_alpha)[0]
        if self.log_beta is not None:
            H = H * np.exp(self.log_beta)
        if self.glm.K == 1:
            return np.abs(coef) * np.sqrt(H)
        centred = coef - coef.mean(axis=1, keepdims=True)
        statistic = np.sum(centred**2 * H, axis=1)
        return scipy.stats.norm.isf(scipy.stats.chi2.sf(statistic, self.glm.K - 1)
                                    / 2)

    def held_out_loss(self, X, y):
        return self.glm.held_out_loss(self.theta, X[:, self.columns], y)

    def params(self, d):
        """``{"coef", "intercept"}`` on all ``d`` features (zeros where dropped)."""
        coef, bias = self.glm.unpack(self.theta)
        full = np.zeros((d,) + coef.shape[1:])
        full[self.columns] = coef
        params = {"coef": full}
        if self.glm.intercept:
            params["intercept"] = np.asarray(bias, np.float64)
        return params


def _single_path(glm, log_beta, grid, held_out=None, patience=3):
    """One strength along ``grid``, strong to weak, warm-started: ``{value:
    fit}`` and, with ``held_out``, the held-out losses (stopped ``patience``
    values past the best)."""
    d = glm.X.shape[1]
    columns = np.arange(d)
    fits, losses, theta, best, since = {}, {}, None, np.inf, 0
    for value in sorted(grid, reverse=True):
        log_alpha = np.full(d, float(value))
        theta = glm.solve(log_alpha, theta)
        fits[value] = _Fit(glm, columns, theta, log_alpha, log_beta)
        if held_out is None:
            continue
        losses[value] = fits[value].held_out_loss(*held_out)
        best, since = (losses[value], 0) if losses[value] < best else (best, since + 1)
        if since >= patience:
            break
    return fits, losses


def _negative_log_evidence(glm, theta, log_alpha, log_beta, H, data_term):
    """Laplace's negative log evidence per row with the diagonal precision."""
    n = glm.X.shape[0]
    coef, _ = glm.unpack(theta)
    K = glm.K
    alpha = np.exp(log_alpha)
    squares = coef**2 if K == 1 else (coef**2).sum(axis=1)
    joint = data_term + 0.5 * np.sum(alpha * squares)
    log_det = np.sum(np.log(H)) - K * np.sum(log_alpha)
    if log_beta is None:
        return (joint + 0.5 * log_det) / n
    beta = np.exp(log_beta)
    return (beta * joint - 0.5 * n * (log_beta - np.log(2 * np.pi))
            + 0.5 * log_det) / n


def ard(single, steps=ARD_STEPS, path=None):
    """MacKay's fixed point for per-feature strengths from the one-strength
    fit ``single``, on the diagonal posterior (see the module): ``{step:
    fit}`` after each of ``steps`` (sorted) steps."""
    glm, theta = single.glm, single.theta
    log_alpha, log_beta = single.log_alpha.copy(), single.log_beta
    n = glm.X.shape[0]
    fits = {}
    for step in range(1, max(steps) + 1):
        H, data_term, _ = glm.curvature(theta, log_alpha)
        if path is not None:
            path["value"].append(_negative_log_evidence(glm, theta, log_alpha,
                                                        log_beta, H, data_term))
            path["log_alpha"].append(log_alpha.copy())
        coef, _ = glm.unpack(theta)
        alpha = np.exp(log_alpha)
        ratio = alpha / H if glm.K == 1 else (alpha[:, None] / H).sum(axis=1)
        gamma = np.clip(glm.K - ratio, 0.0, glm.K)
        squares = coef**2 if glm.K == 1 else (coef**2).sum(axis=1)
        if log_beta is not None:
            # data_term is RSS / 2: beta = (n - sum gamma) / RSS
            log_beta = float(np.log(max(n - gamma.sum(), 1.0) / (2 * data_term)))
            squares = squares * np.exp(log_beta)
        with np.errstate(divide="ignore", invalid="ignore"):
            updated = np.log(gamma) - np.log(squares)
        updated = np.where(np.isfinite(updated), updated, LOG_ALPHA_MAX)
        log_alpha = np.clip(updated, LOG_ALPHA_MIN, LOG_ALPHA_MAX)
        theta = glm.solve(log_alpha, theta)
        if step in steps:
            fits[step] = _Fit(glm, single.columns, theta, log_alpha, log_beta)
    return fits


def _prior_start(glm):
    """The fit at ARDRegression's starting point, every coefficient's
    precision 1 and the noise's ``1 / var(y)`` (``alpha = var(y)`` relative to
    the noise): where the exact squared loss's MacKay updates start when the
    one-strength fit interpolates (``d > n``, the best single strength at the
    weakest end of the path), from which they never prune."""
    d = glm.X.shape[1]
    log_var = float(np.log(max(np.var(glm.y), 1e-12)))
    log_alpha = np.full(d, np.clip(log_var, LOG_ALPHA_MIN, LOG_ALPHA_MAX))
    return _Fit(glm, np.arange(d), glm.solve(log_alpha), log_alpha, -log_var)


def _pruned(fit, tau):
    """``fit`` without the features whose Wald statistic is at most ``tau``,
    refitted with their strengths."""
    keep = np.flatnonzero(fit.wald_z() > tau)
    glm = fit.glm.columns(keep)
    coef, bias = fit.glm.unpack(fit.theta)
    start = np.concatenate([coef[keep].ravel(),
                            np.atleast_1d(bias) if glm.intercept else []])
    theta = glm.solve(fit.log_alpha[keep], start)
    return _Fit(glm, fit.columns[keep], theta, fit.log_alpha[keep], fit.log_beta)


def learn_sparse_feature_strengths(model, X, y, *, n_outputs, splits, taus=TAUS,
                                   ard_steps=ARD_STEPS,
                                   single_grid=SINGLE_GRID) -> FeatureStrengths:
    """Per-feature L2 strengths of a linear model on sparse or wide ``X`` by a
    diagonal evidence; the threshold and the single-or-per-feature choice by
    the folds ``splits``.

    Same contract as :func:`skfarho._relevance.learn_feature_strengths`
    (without screening: every feature gets a strength).

    Parameters
    ----------
    model : skfarho.core.models.Model
        A linear model whose loss :func:`supports`.
    X : ndarray or scipy.sparse matrix of shape (n, d)
        Never densified (CSR is best).
    y : ndarray of shape (n,)
        Encoded targets.
    n_outputs : int
        Scores per row (classes of a multinomial model, else 1).
    splits : list of (train, held_out) index arrays
    taus : tuple of float
        Pruning thresholds tried.
    ard_steps : tuple of int
        The per-feature candidates after these MacKay steps (each one refit):
        the steps are chosen on the folds like the thresholds (the fixed
        point itself overfits with ``d > n``).
    single_grid : tuple of float
        ``log_alpha`` values of the one-strength path.

    Returns
    -------
    FeatureStrengths

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skfarho.core.models import binary_log_loss, linear_model
    >>> rng = np.random.default_rng(0)
    >>> X = sp.random(200, 50, 0.2, "csr", random_state=0)
    >>> y = (X[:, :3].sum(axis=1).A1 + rng.normal(0, 0.1, 200) > 0.15) * 1.0
    >>> splits = [(np.r_[0:k:1, k + 50:200], np.arange(k, k + 50))
    ...           for k in (0, 50, 100, 150)]
    >>> found = learn_sparse_feature_strengths(linear_model(binary_log_loss), X,
    ...                                        y, n_outputs=1, splits=splits)
    >>> found.params["coef"].shape, found.setting in found.cv_loss
    ((50,), True)
    """
    # L-BFGS-B's vector updates are BLAS calls on d-vectors, 7x slower with
    # OpenBLAS's threads on 2 busy cores (12.7 against 1.8 ms an iteration, d =
    # 15000); the sparse products are single-threaded anyway
    with threadpool_limits(1, user_api="blas"):
        return _learn(model, X, y, n_outputs, splits, taus, ard_steps, single_grid)


def _learn(model, X, y, n_outputs, splits, taus, ard_steps, single_grid):
    if scipy.sparse.issparse(X):
        X = scipy.sparse.csr_matrix(X)
    n, d = X.shape
    loss = model.sample_loss
    intercept = "intercept" in model.init(1, max(n_outputs, 2))
    regression = loss is squared_loss
    log_beta = -np.log(max(float(np.var(y)), 1e-12)) if regression else None

    def glm(rows):
        return _Glm(X[rows], y[rows], loss, n_outputs, intercept)

    # 1. one strength by CV along a path
    paths, per_value = [], {}
    for train, held_out in splits:
        fits, losses = _single_path(glm(train), log_beta, single_grid,
                                    (X[held_out], y[held_out]))
        # the fits next to the fold's best only: O(d) memory per fold
        near = sorted(losses, key=losses.get)[:KEEP_NEAR_BEST]
        paths.append({value: fits[value].theta for value in near})
        for value, held_out_loss in losses.items():
            per_value.setdefault(value, []).append(held_out_loss)
    best, single_losses, log_beta = best_single(per_value, len(splits), regression,
                                                log_beta)
    fold_losses = {"single": single_losses}

    def start(model_rows, theta):
        return _Fit(model_rows, np.arange(d), theta, np.full(d, float(best)),
                    log_beta)

    # 2.-3. per-feature strengths and pruning thresholds on the folds (one
    # fold's rows and one pruned copy of them in memory at a time)
    for (train, held_out), thetas in zip(splits, paths, strict=True):
        held = X[held_out], y[held_out]
        rows = glm(train)
        if best not in thetas:  # from the nearest kept fit
            nearest = min(thetas, key=lambda value: abs(value - best))
            thetas[best] = rows.solve(np.full(d, float(best)), thetas[nearest])
        runs = {"ard": ard(start(rows, thetas[best]), ard_steps)}
        if rows.exact:
            runs["ard-prior"] = ard(_prior_start(rows), PRIOR_STEPS)
        for name, fits in runs.items():
            for step, found in fits.items():
                fold_losses.setdefault(f"{name}@{step}", []).append(
                    found.held_out_loss(*held))
                for tau in taus:
                    fold_losses.setdefault(f"{name}@{step},tau={tau:g}", []).append(
                        _pruned(found, tau).held_out_loss(*held))
        thetas.clear()
    fold_losses = {name: np.asarray(losses) for name, losses in fold_losses.items()}
    setting = _choose(fold_losses, "single")

    # 4. the chosen candidate on all rows
    everything = _Glm(X, y, loss, n_outputs, intercept)
    chosen = start(everything,
                   _single_path(everything, log_beta, [best])[0][best].theta)
    path = {"value": [], "log_alpha": []}
    if setting != "single":
        name, _, rest = setting.partition("@")
        step, _, tau = rest.partition(",tau=")
        if name == "ard-prior":
            chosen = _prior_start(everything)
        chosen = ard(chosen, (int(step),), path)[int(step)]
        if tau:
            chosen = _pruned(chosen, float(tau))
    log_alpha = np.full(d, np.inf)
    log_alpha[chosen.columns] = chosen.log_alpha
    full_path = {"value": np.asarray(path["value"]),
                 "log_alpha": np.asarray(path["log_alpha"]).reshape(-1, d)}
    return FeatureStrengths(chosen.params(d), log_alpha, chosen.log_beta, setting,
                            fold_losses, full_path)
