r"""The model evidence (type-II marginal likelihood) as an outer objective.

The estimators' inner loss on ``n`` training rows (``mask == 1``) is

.. math::

    L(w) = \frac{1}{n} \sum_i \ell_i(w) + \frac{1}{2n} \sum_j \alpha_j s_j(w),

with ``s_j = feature_squares(w)[j]`` the squared weights of feature ``j``.
``n L(w) = \sum_i \ell_i + \frac12 \sum_j \alpha_j s_j`` is the negative log joint
density of a model with a Gaussian prior of precision :math:`\alpha_j` on each of
the :math:`K_j` weights of feature ``j`` (``weights_per_strength``) and a flat
prior on the intercept, so its minimizer :math:`w^*` is the posterior mode. The
negative log evidence, by Laplace's approximation around :math:`w^*`, is

.. math::

    -\log p(y) \approx n L(w^*) - \frac12 \sum_j K_j \log\alpha_j
    + \frac12 \log\det H(w^*) - \frac{m}{2}\log 2\pi,
    \qquad H = \nabla^2_{ww}\, n L,

with ``m`` the number of unpenalized (intercept) parameters. The outer losses
built here return it divided by ``n`` (per training row), computed on the same
``(X, y, mask, rows)`` as the inner loss (padded rows have ``mask == 0``;
per-example weights are not part of the model). ``H`` is ``jax.hessian`` of the
raveled parameters (or, ``linear=True``, assembled as
:math:`\sum_i x_i x_i^T \otimes \nabla^2_z \ell_i`) and its log-determinant a
Cholesky factorization, so the implicit hypergradient includes the Hessian's
dependence on :math:`w^*` (third derivatives of the loss): with
:class:`~skfarho.core.Implicit` or :class:`~skfarho.core.HostImplicit` it is the
exact gradient of this objective.

**Cost** in the number of parameters ``p`` (``d`` features times ``K`` outputs,
plus intercepts): :math:`O(n p^2)` time for the Hessian and as much again for
its derivative (``linear=True``: :math:`O(n d^2 K^2)`), :math:`O(p^3)` for the
factorization, :math:`O(p^2 + n p)` memory. Measured on 2 shared CPU cores,
float64, value and gradient with ``linear=True``: 0.18 s at ``n = 1500,
p = 513`` (binary), 0.39 s at ``n = 1347, p = 650`` (digits, ten classes; 1.7 s
through ``jax.hessian``). Beyond ``max_params`` (default :data:`MAX_PARAMS`) the outer
losses raise a ``ValueError`` naming the limit: use the validation objective
there (a stochastic log-determinant would be the way to go further).

**Softmax.** Adding a constant to every class's score changes no probability, so
with intercepts the direction that shifts every class's intercept equally has
zero curvature and a flat prior: ``H`` is singular. ``shift_invariant=True`` adds
``u u^T`` to ``H`` for that unit direction ``u``; ``u`` is an eigenvector of ``H``
with eigenvalue 0, so the log-determinant becomes exactly that of ``H`` on the
complement of ``u`` (the evidence of the model whose intercepts sum to zero).
The inner minimizer is unchanged; its Hessian stays singular along ``u``, which
conjugate gradient handles (the right-hand side is orthogonal to ``u``) and
:class:`~skfarho.core.Cholesky` does not.

**Gaussian noise** (:func:`gaussian_neg_log_evidence`). With noise precision
:math:`\beta` (``exp(hparams["log_noise_precision"])``) and prior precisions
:math:`\lambda_j = \alpha_j \beta`, the negative log joint is
:math:`\beta\, n L(w) - \frac{n}{2}\log\frac{\beta}{2\pi} - \ldots`: the posterior
mode is the inner minimizer whatever :math:`\beta` (the estimator's ``alpha`` is
the ratio prior / noise precision), and the Laplace formula is exact.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

MAX_PARAMS = 4096
"""Default largest number of parameters the dense log-determinant accepts."""

_LOG_2PI = math.log(2.0 * math.pi)


def _check_size(size: int, max_params: int) -> None:
    if size > max_params:
        raise ValueError(
            f"The evidence objective materializes the {size} x {size} Hessian "
            f"(O(n p^2) time, O(p^2) memory); {size} parameters exceed "
            f"max_params={max_params}. Use the validation objective for models "
            "this large, or raise max_params if the memory allows.")


def _shift_direction(params):
    """The unit vector shifting every output's intercept equally (raveled)."""
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    size = jnp.size(params["intercept"])
    zeros["intercept"] = jnp.full_like(params["intercept"], 1.0 / math.sqrt(size))
    return ravel_pytree(zeros)[0]


def _hessian(neg_log_joint, params, *, shift_invariant, max_params):
    """Hessian of ``neg_log_joint`` in the raveled parameters (null direction
    filled in for softmax intercepts) and the ravel's inverse."""
    flat, unravel = ravel_pytree(params)
    _check_size(flat.size, max_params)

    def flat_joint(vector):
        return neg_log_joint(unravel(vector))

    hessian = jax.hessian(flat_joint)(flat)
    hessian = 0.5 * (hessian + hessian.T)
    if shift_invariant and isinstance(params, dict) and "intercept" in params:
        direction = _shift_direction(params)
        hessian = hessian + jnp.outer(direction, direction)
    return hessian


def _linear_hessian(sample_loss, feature_squares, params, hparams, X, y, mask, *,
                    shift_invariant, max_params):
    """:func:`_hessian` of the negative log joint for ``scores = X coef +
    intercept``: ``sum_i mask_i (x_i x_i^T) kron L_i`` with ``L_i`` the loss's
    Hessian in the scores, plus the penalty's Hessian (same value, exact in
    ``w``, ``O(n d^2 K^2)``)."""
    flat, unravel = ravel_pytree(params)
    _check_size(flat.size, max_params)
    coef = params["coef"]
    outputs = 1 if coef.ndim == 1 else coef.shape[1]
    design = X
    if "intercept" in params:
        design = jnp.concatenate([X, jnp.ones((X.shape[0], 1), X.dtype)], axis=1)
    scores = X @ coef + params.get("intercept", 0.0)

    def one_loss(z, target):
        return jnp.sum(sample_loss(z[None], target[None]))

    curvature = jax.vmap(jax.hessian(one_loss))(scores, y)
    curvature = curvature * mask.reshape((-1,) + (1,) * (curvature.ndim - 1))
    if outputs == 1:
        data = design.T @ (curvature[:, None] * design)
    else:
        width = design.shape[1] * outputs
        data = jnp.einsum("nd,nkl,ne->dkel", design, curvature, design).reshape(
            width, width)
    alpha = jnp.exp(hparams["log_alpha"])
    penalty = jax.hessian(
        lambda v: 0.5 * jnp.sum(alpha * feature_squares(unravel(v))))(flat)
    hessian = data + 0.5 * (penalty + penalty.T)
    if shift_invariant and "intercept" in params:
        direction = _shift_direction(params)
        hessian = hessian + jnp.outer(direction, direction)
    return hessian


def _half_logdet(hessian):
    return jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(hessian))))


def _unpenalized_count(params) -> int:
    if isinstance(params, dict) and "intercept" in params:
        return int(jnp.size(params["intercept"]))
    return 0


def _log_prior_normalizer(hparams, squares, weights_per_strength):
    """``1/2 sum_j K_j log alpha_j`` with ``log_alpha`` scalar or per feature."""
    log_alpha = jnp.broadcast_to(hparams["log_alpha"], jnp.shape(squares))
    return 0.5 * weights_per_strength * jnp.sum(log_alpha)


def _joint(scores, sample_loss, feature_squares, hparams, X, y, mask):
    """``w -> sum_i mask_i l_i(w) + 1/2 sum_j alpha_j s_j(w)``: n times the inner
    loss (the negative log joint density up to constants)."""
    alpha = jnp.exp(hparams["log_alpha"])

    def neg_log_joint(w):
        losses = sample_loss(scores(w, X), y)
        if losses.ndim > 1:  # several outputs (multi-target ridge)
            losses = jnp.sum(losses, axis=tuple(range(1, losses.ndim)))
        return jnp.sum(mask * losses) + 0.5 * jnp.sum(alpha * feature_squares(w))

    return neg_log_joint


def _squared_loss(z, y):
    return 0.5 * (z - y) ** 2


@functools.lru_cache(maxsize=64)
def laplace_neg_log_evidence(
    scores: Callable,
    sample_loss: Callable,
    feature_squares: Callable,
    *,
    weights_per_strength: int = 1,
    shift_invariant: bool = False,
    linear: bool = False,
    max_params: int = MAX_PARAMS,
) -> Callable:
    r"""Negative log evidence of a penalized GLM by Laplace's approximation.

    Parameters
    ----------
    scores : callable
        ``scores(params, X)``: decision values.
    sample_loss : callable
        ``sample_loss(scores, y)``: per-row negative log likelihood (the binary
        or multinomial log loss).
    feature_squares : callable
        ``feature_squares(params)``: per feature, the squared weights its
        strength multiplies.
    weights_per_strength : int, default=1
        ``K_j``, the number of weights each strength multiplies (the number of
        classes for a multinomial model whose strengths are shared by classes).
    shift_invariant : bool, default=False
        True for softmax scores with intercepts: removes the intercepts' null
        direction from the log-determinant (see the module docstring).
    linear : bool, default=False
        True when ``scores(params, X)`` is ``X @ params["coef"] +
        params["intercept"]`` (the linear models): the Hessian is assembled as
        :math:`\sum_i x_i x_i^T \otimes \nabla^2_z \ell_i` instead of by
        ``jax.hessian`` of the raveled parameters: same value and gradient,
        several times cheaper (multinomial digits: value and gradient 10x).
    max_params : int, default=MAX_PARAMS
        Largest number of parameters accepted (dense Hessian).

    Returns
    -------
    outer_loss : callable
        Cached: equal arguments return the same function, so compiled programs
        are reused. ``outer_loss(params, hparams, X, y, mask, rows=None)``: the
        negative log evidence per training row, a
        :attr:`BilevelProblem.outer_loss` with the inner data as outer data.
        Reads ``hparams["log_alpha"]``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import float64_scope
    >>> def scores(params, X):
    ...     return X @ params["coef"] + params["intercept"]
    >>> def loss(z, y):
    ...     return jnp.logaddexp(0.0, z) - y * z
    >>> evidence = laplace_neg_log_evidence(scores, loss, lambda p: p["coef"] ** 2)
    >>> with float64_scope():
    ...     X, y = jnp.array([[1.0], [-1.0], [2.0]]), jnp.array([1.0, 0.0, 0.0])
    ...     params = {"coef": jnp.zeros(1), "intercept": jnp.zeros(())}
    ...     value = evidence(params, {"log_alpha": jnp.zeros(1)}, X, y, jnp.ones(3))
    >>> # (3 log 2 + log det [[2.5, 0.5], [0.5, 0.75]] / 2 - log(2 pi) / 2) / 3
    >>> round(float(value), 4)
    0.4678
    """
    precision = posterior_precision(scores, sample_loss, feature_squares,
                                    shift_invariant=shift_invariant, linear=linear,
                                    max_params=max_params)

    def outer_loss(params, hparams, X, y, mask, rows=None):
        joint = _joint(scores, sample_loss, feature_squares, hparams, X, y, mask)
        half_logdet = _half_logdet(precision(params, hparams, X, y, mask))
        normalizer = _log_prior_normalizer(hparams, feature_squares(params),
                                           weights_per_strength)
        free = _unpenalized_count(params) - (1 if shift_invariant else 0)
        value = joint(params) - normalizer + half_logdet - 0.5 * free * _LOG_2PI
        return value / jnp.sum(mask)

    return outer_loss


@functools.lru_cache(maxsize=64)
def gaussian_neg_log_evidence(
    scores: Callable,
    feature_squares: Callable,
    *,
    weights_per_strength: int = 1,
    linear: bool = False,
    max_params: int = MAX_PARAMS,
) -> Callable:
    r"""Exact negative log evidence of ridge regression with a learned noise level.

    The model: :math:`y_i \sim N(s_i(w), 1/\beta)`, weights of feature ``j``
    :math:`\sim N(0, 1/(\alpha_j\beta))`, flat prior on the intercept. Its
    posterior mode minimizes the estimator's inner loss (``alpha`` is the ratio
    of prior to noise precision), and for a linear ``scores`` the Laplace
    formula of the module docstring is exact.

    Parameters
    ----------
    scores : callable
        ``scores(params, X)``: predictions, linear in ``params``.
    feature_squares : callable
        ``feature_squares(params)``: per feature, the squared weights.
    weights_per_strength : int, default=1
        Number of outputs (weights per strength).
    linear : bool, default=False
        See :func:`laplace_neg_log_evidence`.
    max_params : int, default=MAX_PARAMS
        Largest number of parameters accepted (dense Hessian).

    Returns
    -------
    outer_loss : callable
        Cached, as :func:`laplace_neg_log_evidence`'s.
        ``outer_loss(params, hparams, X, y, mask, rows=None)``: the negative log
        evidence per training row. Reads ``hparams["log_alpha"]`` and
        ``hparams["log_noise_precision"]`` (:math:`\log\beta`), both learnable.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import float64_scope
    >>> evidence = gaussian_neg_log_evidence(lambda p, X: X @ p["coef"],
    ...                                      lambda p: p["coef"] ** 2)
    >>> with float64_scope():
    ...     X, y = jnp.array([[1.0], [2.0]]), jnp.array([1.0, 1.0])
    ...     params = {"coef": jnp.array([0.5])}  # the mode at alpha = 1
    ...     hparams = {"log_alpha": jnp.zeros(1), "log_noise_precision": 0.0}
    ...     value = evidence(params, hparams, X, y, jnp.ones(2))
    >>> round(float(value), 4)  # y ~ N(0, I + X X^T): -log density / 2
    1.4919
    """
    precision = posterior_precision(scores, _squared_loss, feature_squares,
                                    linear=linear, max_params=max_params)

    def outer_loss(params, hparams, X, y, mask, rows=None):
        log_beta = hparams["log_noise_precision"]
        n, outputs = jnp.sum(mask), weights_per_strength
        joint = _joint(scores, _squared_loss, feature_squares, hparams, X, y, mask)
        # the precision is beta H0: log det = log det H0 + size log beta
        half_logdet = _half_logdet(precision(params, hparams, X, y, mask))
        size = ravel_pytree(params)[0].size
        squares = feature_squares(params)
        # prior precisions alpha_j beta, K_j = outputs weights each
        normalizer = (_log_prior_normalizer(hparams, squares, outputs)
                      + 0.5 * outputs * squares.size * log_beta)
        value = (jnp.exp(log_beta) * joint(params)
                 - 0.5 * outputs * n * (log_beta - _LOG_2PI)
                 - normalizer + half_logdet + 0.5 * size * log_beta
                 - 0.5 * _unpenalized_count(params) * _LOG_2PI)
        return value / n

    return outer_loss


@functools.lru_cache(maxsize=64)
def posterior_precision(
    scores: Callable,
    sample_loss: Callable,
    feature_squares: Callable,
    *,
    shift_invariant: bool = False,
    linear: bool = False,
    max_params: int = MAX_PARAMS,
) -> Callable:
    r"""The Laplace posterior's precision: the Hessian of ``n`` times the inner loss.

    Its inverse is the posterior covariance of the raveled parameters (for
    Gaussian noise, divide it by :math:`\beta`): the standard errors behind a
    per-feature Wald statistic :math:`|\mu_j| / \sqrt{\Sigma_{jj}}` and the
    predictive variance of moderated predictions.

    Parameters
    ----------
    scores, sample_loss, feature_squares : callable
        As in :func:`laplace_neg_log_evidence`.
    shift_invariant : bool, default=False
        Add ``u u^T`` along the softmax intercepts' null direction ``u``.
    linear : bool, default=False
        See :func:`laplace_neg_log_evidence`.
    max_params : int, default=MAX_PARAMS
        Largest number of parameters accepted.

    Returns
    -------
    precision : callable
        ``precision(params, hparams, X, y, mask) -> (p, p)`` array, in the order
        of ``jax.flatten_util.ravel_pytree(params)`` (``coef`` before
        ``intercept`` for the linear models). Cached, as the outer losses.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import float64_scope
    >>> precision = posterior_precision(lambda p, X: X @ p["coef"],
    ...                                 lambda z, y: 0.5 * (z - y) ** 2,
    ...                                 lambda p: p["coef"] ** 2)
    >>> with float64_scope():
    ...     H = precision({"coef": jnp.zeros(1)}, {"log_alpha": jnp.zeros(1)},
    ...                   jnp.array([[1.0], [2.0]]), jnp.zeros(2), jnp.ones(2))
    >>> H.tolist()  # X^T X + alpha
    [[6.0]]
    """

    def precision(params, hparams, X, y, mask):
        if linear:
            return _linear_hessian(sample_loss, feature_squares, params, hparams, X,
                                   y, mask, shift_invariant=shift_invariant,
                                   max_params=max_params)
        joint = _joint(scores, sample_loss, feature_squares, hparams, X, y, mask)
        return _hessian(joint, params, shift_invariant=shift_invariant,
                        max_params=max_params)

    return precision
