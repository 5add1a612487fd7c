"""The bilevel problem behind every estimator, built from a model's pure functions.

A model is ``scores(params, X)`` (decision values), a per-sample loss of the scores
``sample_loss(scores, y)`` and ``feature_squares(params)`` (per input feature, the
squared weights its L2 strength multiplies). The hyperparameters it reads are
declared in :mod:`skfarho._hyperparameters`; the outer loss comes from the
objective (:mod:`skfarho._objective`).

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


def example_weights(hparams, rows, mask):
    """Training-row weights: learned ``sigmoid(sw_logit)`` or ones, times the mask."""
    if "sw_logit" in hparams:
        return mask * jax.nn.sigmoid(hparams["sw_logit"][rows])
    return mask


def learning_rate(hparams):
    """The bounded inner learning rate ``lr_max * sigmoid(lr_logit)``."""
    return hparams["lr_max"] * jax.nn.sigmoid(hparams["lr_logit"])


def momentum(hparams):
    """The heavy-ball momentum ``sigmoid(momentum_logit)``."""
    return jax.nn.sigmoid(hparams["momentum_logit"])


_DYNAMICS = {
    "gd": lambda: gradient_descent(learning_rate),
    "momentum": lambda: heavy_ball(learning_rate, momentum),
    "adam": lambda: adam(learning_rate),
}


def regularized_loss(model):
    """The inner objective of a model: weighted mean loss + per-feature L2 / n.

    ``inner_loss(params, hparams, X, y, mask, rows)``; padded rows have
    ``mask == 0``.
    """

    def inner_loss(params, hparams, X, y, mask, rows):
        weights = example_weights(hparams, rows, mask)
        losses = model.sample_loss(model.scores(params, X), y)
        data_term = jnp.sum(weights * losses) / jnp.sum(weights)
        squares = model.feature_squares(params)
        penalty = 0.5 * jnp.sum(jnp.exp(hparams["log_alpha"]) * squares)
        return data_term + penalty / jnp.sum(mask)

    return inner_loss


@functools.lru_cache(maxsize=64)
def model_problem(model, outer_loss, inner_optimizer: str,
                  inner_steps: int) -> BilevelProblem:
    """The bilevel problem of a model and an outer loss, cached so compiled steps
    are reused.

    Inner data: ``(X, y, mask, rows)``; the outer data is whatever ``outer_loss``
    reads (see :mod:`skfarho._objective`). ``hparams["w0"]`` is the
    initialization (a fixed entry: zeros, a random network, or the folds' mean
    solution for the final fit).
    """
    return BilevelProblem(
        inner_loss=regularized_loss(model),
        outer_loss=outer_loss,
        init_params=lambda hparams: hparams["w0"],
        optimizer=_DYNAMICS[inner_optimizer](),
        num_steps=inner_steps,
    )
