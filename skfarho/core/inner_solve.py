"""Solving the inner problem to a tolerance with L-BFGS (optax), for HOAG."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
import optax.tree_utils as otu

PyTree = Any


def lbfgs_minimize(
    fun: Callable[[PyTree], jax.Array],
    init_params: PyTree,
    tol,
    maxiter: int = 1000,
    memory_size: int = 10,
) -> tuple[PyTree, jax.Array]:
    """Minimize ``fun`` with optax's L-BFGS (zoom line search) in a ``while_loop``.

    Parameters
    ----------
    fun : callable
        Smooth objective of the parameters.
    init_params : PyTree
        Starting point (a warm start from the previous outer step, typically).
    tol : float or jax.Array
        Stop when the gradient's Euclidean norm is below ``tol``. May be traced,
        so a tolerance schedule does not trigger recompilation.
    maxiter : int, default=1000
        Iteration budget.
    memory_size : int, default=10
        Number of curvature pairs kept.

    Returns
    -------
    params : PyTree
        The approximate minimizer.
    grad_norm : jax.Array
        The gradient norm at ``params``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> params, grad_norm = lbfgs_minimize(
    ...     lambda w: jnp.sum((w - 3.0) ** 2), jnp.zeros(2), tol=1e-6
    ... )
    >>> params.round(4).tolist()
    [3.0, 3.0]
    """
    optimizer = optax.lbfgs(memory_size=memory_size)
    value_and_grad = optax.value_and_grad_from_state(fun)

    def step(carry):
        params, state, _ = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = optimizer.update(
            grad, state, params, value=value, grad=grad, value_fn=fun
        )
        params = optax.apply_updates(params, updates)
        return params, state, otu.tree_norm(otu.tree_get(state, "grad"))

    def keep_going(carry):
        _, state, grad_norm = carry
        count = otu.tree_get(state, "count")
        unfinished = (grad_norm >= tol) & jnp.isfinite(grad_norm)
        return (count == 0) | ((count < maxiter) & unfinished)

    inf = jnp.full((), jnp.inf, otu.tree_norm(init_params).dtype)
    init = (init_params, optimizer.init(init_params), inf)
    params, _, grad_norm = jax.lax.while_loop(keep_going, step, init)
    return params, grad_norm
