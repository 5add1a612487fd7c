"""The bilevel problem behind every estimator, built from a model's pure functions.

A model is ``scores(params, X)`` (decision values), a per-sample loss of the scores
``sample_loss(scores, y)`` and ``feature_squares(params)`` (per input feature, the
squared weights its L2 strength multiplies). Hyperparameters, unconstrained:

- ``log_alpha``: log of the L2 strength, scalar or one per feature;
- ``sw_logit``: logits of the per-example weights, ``weight = sigmoid(logit)``,
  one per row of the data given to ``fit`` (rows are gathered by index);
- ``lr_logit``: the inner learning rate is ``lr_max * sigmoid(lr_logit)``, so it
  stays in ``(0, lr_max)``.

The inner objective for training rows ``i`` with weights ``s_i`` is

.. math::

    L(w) = \\frac{\\sum_i s_i \\ell_i(w)}{\\sum_i s_i}
           + \\frac{1}{2n} \\sum_j \\alpha_j \\lVert w_j \\rVert^2,

i.e. scikit-learn's ``LogisticRegression`` objective with ``alpha = 1 / C`` and
``Ridge``'s with the same ``alpha``, divided by ``n`` (same minimizer).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from skfarho.core import BilevelProblem, adam, gradient_descent, heavy_ball


def binary_log_loss(z, y):
    """Per-sample logistic loss of scores ``z`` for ``y`` in {0, 1}."""
    return jnp.logaddexp(0.0, z) - y * z


def multinomial_log_loss(z, y):
    """Per-sample cross-entropy of scores ``z`` (n, K) for integer labels ``y``."""
    # a one-hot product is cheaper than a gather on XLA:CPU
    picked = jnp.sum(z * jax.nn.one_hot(y, z.shape[1], dtype=z.dtype), axis=1)
    return jax.nn.logsumexp(z, axis=1) - picked


def squared_loss(z, y):
    """Per-sample ``0.5 (z - y)^2``."""
    return 0.5 * (z - y) ** 2


def example_weights(hparams, rows, mask):
    """Training-row weights: learned ``sigmoid(sw_logit)`` or ones, times the mask."""
    if "sw_logit" in hparams:
        return mask * jax.nn.sigmoid(hparams["sw_logit"][rows])
    return mask


def learning_rate(hparams):
    """The bounded inner learning rate ``lr_max * sigmoid(lr_logit)``."""
    return hparams["lr_max"] * jax.nn.sigmoid(hparams["lr_logit"])


_DYNAMICS = {
    "gd": lambda: gradient_descent(learning_rate),
    "momentum": lambda: heavy_ball(learning_rate, 0.9),
    "adam": lambda: adam(learning_rate),
}


@functools.lru_cache(maxsize=64)
def model_problem(scores, sample_loss, feature_squares, inner_optimizer: str,
                  inner_steps: int, hyper_penalty: float = 0.0) -> BilevelProblem:
    """The bilevel problem of a model, cached so compiled steps are reused.

    Inner data: ``(X, y, mask, rows)``; outer data: ``(X, y, mask)``; padded rows
    have ``mask == 0``. ``hparams["w0"]`` is the initialization template.
    ``hyper_penalty`` adds ``hyper_penalty * var(log_alpha)`` to the outer loss,
    shrinking per-feature strengths toward their mean.
    """

    def loss(params, X, y):
        return sample_loss(scores(params, X), y)

    def inner_loss(params, hparams, X, y, mask, rows):
        weights = example_weights(hparams, rows, mask)
        data_term = jnp.sum(weights * loss(params, X, y)) / jnp.sum(weights)
        squares = feature_squares(params)
        penalty = 0.5 * jnp.sum(jnp.exp(hparams["log_alpha"]) * squares)
        return data_term + penalty / jnp.sum(mask)

    def outer_loss(params, hparams, X, y, mask):
        value = jnp.sum(mask * loss(params, X, y)) / jnp.sum(mask)
        if hyper_penalty:
            value = value + hyper_penalty * jnp.var(hparams["log_alpha"])
        return value

    return BilevelProblem(
        inner_loss=inner_loss,
        outer_loss=outer_loss,
        init_params=lambda hparams: hparams["w0"],
        optimizer=_DYNAMICS[inner_optimizer](),
        num_steps=inner_steps,
    )
