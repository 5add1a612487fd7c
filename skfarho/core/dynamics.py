"""Differentiable inner dynamics built from the hyperparameters.

An inner optimizer here is a function ``optimizer(hparams) ->
optax.GradientTransformation``. Every coefficient (learning rate, momentum, Adam's
betas) is either a number or a callable of the hyperparameters, so it can be
learned by any hypergradient method. The step is
``w_{t+1} = w_t + update(grad inner_loss(w_t, hparams))`` with optax's update rule;
:func:`run` applies it ``num_steps`` times in a :func:`jax.lax.scan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax

PyTree = Any
Coefficient = float | Callable[[PyTree], Any]


def _resolve(coefficient: Coefficient, hparams: PyTree):
    return coefficient(hparams) if callable(coefficient) else coefficient


def from_hparams(key: str, transform: Callable[[Any], Any] | None = None):
    """A coefficient read from the hyperparameter dict, optionally transformed.

    Parameters
    ----------
    key : str
        The key of the hyperparameter in the ``hparams`` dict.
    transform : callable, optional
        Maps the stored (unconstrained) value to the coefficient, e.g.
        :func:`jax.numpy.exp` for a learning rate stored as its logarithm.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> lr = from_hparams("log_lr", jnp.exp)
    >>> float(lr({"log_lr": jnp.log(0.5)}))
    0.5
    """

    def coefficient(hparams):
        value = hparams[key]
        return transform(value) if transform is not None else value

    coefficient.__name__ = f"from_hparams_{key}"
    return coefficient


class _Optimizer(NamedTuple):
    build: Callable[..., optax.GradientTransformation]
    coefficients: tuple

    def __call__(self, hparams: PyTree) -> optax.GradientTransformation:
        return self.build(*(_resolve(c, hparams) for c in self.coefficients))


def gradient_descent(learning_rate: Coefficient) -> _Optimizer:
    """Plain gradient descent, ``w <- w - lr * g``.

    Examples
    --------
    >>> opt = gradient_descent(0.1)({})
    >>> type(opt).__name__
    'GradientTransformationExtraArgs'
    """
    return _Optimizer(lambda lr: optax.sgd(lr), (learning_rate,))


def heavy_ball(learning_rate: Coefficient, momentum: Coefficient = 0.9) -> _Optimizer:
    """Heavy-ball momentum, ``v <- m v + g; w <- w - lr v`` (optax's ``sgd``)."""
    return _Optimizer(
        lambda lr, m: optax.sgd(lr, momentum=m), (learning_rate, momentum)
    )


def adam(
    learning_rate: Coefficient,
    b1: Coefficient = 0.9,
    b2: Coefficient = 0.999,
    eps: float = 0.0,
    eps_root: float = 1e-8,
) -> _Optimizer:
    """Adam with ``eps`` inside the square root by default (``eps_root``).

    FAR-HO put Adam's epsilon under the square root so that the update stays
    differentiable at zero gradients; optax's ``eps_root`` does the same.
    """
    return _Optimizer(
        lambda lr, m, v: optax.adam(lr, b1=m, b2=v, eps=eps, eps_root=eps_root),
        (learning_rate, b1, b2),
    )


class InnerState(NamedTuple):
    """The inner parameters and the optimizer's state."""

    params: PyTree
    opt_state: PyTree


def init_state(problem, hparams: PyTree) -> InnerState:
    """The state at step 0: ``init_params(hparams)`` and a fresh optimizer state."""
    params = problem.init_params(hparams)
    return InnerState(params, problem.optimizer(hparams).init(params))


def _scan_steps(step, state, num_steps: int, checkpoint: bool):
    if num_steps == 0:
        return state
    body = jax.checkpoint(step) if checkpoint else step
    state, _ = jax.lax.scan(body, state, None, length=num_steps)
    return state


def run(
    problem,
    hparams: PyTree,
    inner_data: tuple,
    state: InnerState,
    num_steps: int,
    checkpoint: bool = False,
) -> InnerState:
    """Apply ``num_steps`` inner steps from ``state`` inside one ``lax.scan``.

    With ``checkpoint=True`` the steps are split into about ``sqrt(num_steps)``
    segments of about ``sqrt(num_steps)`` steps, each rematerialized under
    :func:`jax.checkpoint`: reverse mode then stores ``O(sqrt(T))`` states instead
    of ``O(T)``, for about one extra forward pass.
    """
    optimizer = problem.optimizer(hparams)
    grad_fn = jax.grad(problem.inner_loss)

    def step(carry: InnerState, _):
        grads = grad_fn(carry.params, hparams, *inner_data)
        updates, opt_state = optimizer.update(grads, carry.opt_state, carry.params)
        return InnerState(optax.apply_updates(carry.params, updates), opt_state), None

    if not checkpoint:
        return _scan_steps(step, state, num_steps, False)
    segment = max(1, math.isqrt(num_steps))
    n_segments, remainder = divmod(num_steps, segment)

    def run_segment(carry, _):
        return _scan_steps(step, carry, segment, True), None

    state, _ = jax.lax.scan(
        jax.checkpoint(run_segment), state, None, length=n_segments
    )
    return _scan_steps(step, state, remainder, True)
