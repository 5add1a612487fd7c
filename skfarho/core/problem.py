"""The bilevel problem and the value every hypergradient method returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from skfarho.core.dynamics import gradient_descent

PyTree = Any


@dataclass(frozen=True)
class BilevelProblem:
    r"""A bilevel hyperparameter-optimization problem made of pure functions.

    .. math::

        \min_\lambda E(w_T(\lambda), \lambda) \quad\text{with}\quad
        w_{t+1} = \Phi(w_t, \lambda),\; w_0 = w_0(\lambda),

    where :math:`\Phi` is one step of ``optimizer(hparams)`` on ``inner_loss``.
    The implicit method replaces :math:`w_T` with the minimizer of ``inner_loss``.

    Parameters
    ----------
    inner_loss : callable
        ``inner_loss(params, hparams, *inner_data) -> scalar``, e.g. a training loss
        with per-feature L2 and per-example weights.
    outer_loss : callable
        ``outer_loss(params, hparams, *outer_data) -> scalar``, e.g. a validation
        loss. It may depend on ``hparams`` directly (a penalty on them, say).
    init_params : callable
        ``init_params(hparams) -> params``: the initial inner parameters. Return
        ``hparams["w0"]`` to make the initialization a hyperparameter.
    optimizer : callable, default=gradient_descent(0.1)
        ``optimizer(hparams) -> optax.GradientTransformation``: the inner dynamics,
        built from the hyperparameters so that the learning rate, the momentum and
        so on can be learned. See :mod:`skfarho.core.dynamics`.
    num_steps : int, default=100
        Number of inner steps ``T`` of the unrolled methods.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem, Reverse
    >>> X, y = jnp.eye(3), jnp.array([1.0, 2.0, 3.0])
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h, X, y: jnp.mean((X @ w - y) ** 2)
    ...     + jnp.exp(h) * jnp.sum(w**2),
    ...     outer_loss=lambda w, h, X, y: jnp.mean((X @ w - y) ** 2),
    ...     init_params=lambda h: jnp.zeros(3),
    ...     num_steps=50,
    ... )
    >>> result = Reverse()(problem, jnp.array(-2.0), (X, y), (X, y))
    >>> bool(result.grad > 0)  # less regularization fits the data better
    True
    """

    inner_loss: Callable[..., jax.Array]
    outer_loss: Callable[..., jax.Array]
    init_params: Callable[[PyTree], PyTree]
    optimizer: Callable[[PyTree], Any] = gradient_descent(0.1)
    num_steps: int = 100


class HypergradResult(NamedTuple):
    """What a hypergradient method returns.

    Attributes
    ----------
    value : jax.Array
        The outer objective at the current hyperparameters.
    grad : PyTree
        Its total derivative with respect to the hyperparameters.
    params : PyTree
        The inner parameters the outer objective was evaluated at.
    warm_start : PyTree or None
        State to hand to the next call (the implicit method's solution and
        linear-system solution); ``None`` for the unrolled methods.
    finite : jax.Array
        False when the inner parameters, the value or the hypergradient are not
        finite: the inner dynamics diverged. Check it;
        :func:`~skfarho.core.minimize_hyperparameters` raises a
        :class:`~skfarho.core.DivergenceError` naming the knob to turn.
    """

    value: jax.Array
    grad: PyTree
    params: PyTree
    warm_start: PyTree
    finite: jax.Array


def tree_all_finite(*trees: PyTree) -> jax.Array:
    """True when every leaf of every tree is finite (integer leaves are ignored)."""
    leaves = [
        jnp.all(jnp.isfinite(leaf))
        for tree in trees
        for leaf in jax.tree_util.tree_leaves(tree)
        if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_result(value, grad, params, warm_start=None) -> HypergradResult:
    """Assemble a :class:`HypergradResult`, computing its ``finite`` flag."""
    return HypergradResult(
        value, grad, params, warm_start, tree_all_finite(value, grad, params)
    )


def bind_fixed(problem, fixed):
    """The problem whose functions see ``{**hparams, **fixed}``.

    ``fixed`` holds hyperparameters the losses and dynamics read but that are not
    learned (so no hypergradient is computed for them). Called inside a traced
    function, ``fixed`` stays a traced argument: changing its values does not
    recompile.
    """
    if not fixed:
        return problem

    def merge(hparams):
        return {**hparams, **fixed}

    return BilevelProblem(
        inner_loss=lambda w, h, *data: problem.inner_loss(w, merge(h), *data),
        outer_loss=lambda w, h, *data: problem.outer_loss(w, merge(h), *data),
        init_params=lambda h: problem.init_params(merge(h)),
        optimizer=lambda h: problem.optimizer(merge(h)),
        num_steps=problem.num_steps,
    )
