"""Newton's method on the inner problem, for models with few parameters.

:func:`newton_minimize` materializes the Hessian of the inner loss (one
forward-over-reverse pass per parameter), factors it by Cholesky and takes the
Newton step, halving it until the loss decreases enough. Where the inner
problem has a few dozen parameters (a linear model on a few dozen features),
each iteration costs a handful of gradient evaluations and it converges in a
few iterations (one, on a quadratic loss such as ridge's), where L-BFGS needs
tens of evaluations and one program call each. scikit-learn's
``LogisticRegression(solver="newton-cholesky")`` makes the same trade for
``n_samples >> n_features``. :class:`~skfarho.core.Implicit` uses it with
``inner_solver="newton"``, together with :class:`~skfarho.core.Cholesky` for
the linear system; the whole solve is one traced ``while_loop``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from skfarho.core.inner_solve import stopping_threshold
from skfarho.core.linear_solve import cholesky_solve, jittered

PyTree = Any

# Armijo's sufficient-decrease constant and the most halvings of a step
_SUFFICIENT_DECREASE = 1e-4
_MAX_HALVINGS = 30


def newton_minimize(
    fun: Callable[[PyTree], jax.Array],
    init_params: PyTree,
    tol,
    maxiter: int = 100,
    reduction: float = 0.0,
) -> tuple[PyTree, jax.Array]:
    """Minimize a smooth convex ``fun`` by damped Newton steps (traced).

    Each iteration solves ``H d = -g`` by Cholesky and moves by the largest
    ``d / 2**j`` that decreases ``fun`` by Armijo's rule, or that halves the
    gradient norm (near the minimum, the decrease of the value is below
    rounding while the gradient still shrinks quadratically).

    Parameters
    ----------
    fun : callable
        Objective of a pytree of parameters, twice differentiable, with a
        positive-definite Hessian (strongly convex).
    init_params : PyTree
        Starting point.
    tol : float or jax.Array
        Stop when the gradient's Euclidean norm is below ``tol`` (may be traced).
    maxiter : int, default=100
        Iteration budget.
    reduction : float, default=0.0
        Also reduce the gradient norm to ``reduction`` times its value at
        ``init_params`` (see :func:`~skfarho.core.inner_solve.stopping_threshold`).

    Returns
    -------
    params : PyTree
        The approximate minimizer.
    grad_norm : jax.Array
        The gradient norm at ``params`` (non-finite when the iteration broke
        down: the caller reports it).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> fun = lambda w: jnp.sum(jnp.logaddexp(0.0, -w)) + 0.5 * jnp.sum(w ** 2)
    >>> params, grad_norm = newton_minimize(fun, jnp.zeros(2), tol=1e-8)
    >>> [round(value, 4) for value in params.tolist()], bool(grad_norm < 1e-8)
    ([0.4011, 0.4011], True)
    """
    flat_init, unravel = ravel_pytree(init_params)

    def flat_fun(vector):
        return fun(unravel(vector))

    value_and_grad = jax.value_and_grad(flat_fun)
    hessian = jax.jacfwd(jax.grad(flat_fun))
    value, grad = value_and_grad(flat_init)
    norm = jnp.linalg.norm(grad)
    if reduction > 0:
        tol = stopping_threshold(tol, reduction, norm, jnp)

    def keep_going(state):
        _, _, _, norm, count = state
        return (norm >= tol) & jnp.isfinite(norm) & (count < maxiter)

    def iteration(state):
        vector, value, grad, norm, count = state
        direction = -cholesky_solve(hessian(vector), grad)
        slope = jnp.vdot(grad, direction)

        def trial(step):
            new_value, new_grad = value_and_grad(vector + step * direction)
            return step, new_value, new_grad, jnp.linalg.norm(new_grad)

        def rejected(search):
            step, new_value, _, new_norm = search
            accepted = ((new_value <= value + _SUFFICIENT_DECREASE * step * slope)
                        | (new_norm <= 0.5 * norm))
            return ~accepted & (step > 2.0 ** -_MAX_HALVINGS)

        step, new_value, new_grad, new_norm = jax.lax.while_loop(
            rejected, lambda search: trial(0.5 * search[0]), trial(1.0))
        return (vector + step * direction, new_value, new_grad, new_norm,
                count + 1)

    vector, _, _, norm, _ = jax.lax.while_loop(
        keep_going, iteration, (flat_init, value, grad, norm, 0))
    return unravel(vector), norm


def newton_system(fun: Callable[[PyTree], jax.Array], params: PyTree):
    """``fun``'s value, flat gradient and Hessian at ``params`` (traced once).

    The Hessian is the forward-mode Jacobian of the gradient, one product per
    parameter; the value and gradient come along as its auxiliary output.
    """
    flat, unravel = ravel_pytree(params)

    def gradient(vector):
        value, grad = jax.value_and_grad(lambda v: fun(unravel(v)))(vector)
        return grad, (value, grad)

    hessian, (value, grad) = jax.jacfwd(gradient, has_aux=True)(flat)
    return value, grad, hessian


def host_newton_minimize(system: Callable, init: np.ndarray, tol: float,
                         maxiter: int = 100, reduction: float = 0.0):
    """Damped Newton steps on a batch of problems, driven from the host (NumPy).

    The step rule of :func:`newton_minimize` (a Newton step, halved until
    Armijo's decrease or a halved gradient norm), for problems whose value,
    gradient and Hessian one jitted program returns: ``system(x) -> (values, grads,
    hessians)`` for ``x`` of shape ``(problems, parameters)`` (and shapes
    ``(problems,)``, ``(problems, parameters)``, ``(problems, parameters,
    parameters)``). Each iteration calls ``system`` once at the Newton step (more
    while a problem's step is halved); each problem stops on its own gradient
    norm threshold. The jittered Hessian (:func:`~skfarho.core.linear_solve.jittered`)
    is solved by NumPy's batched LU solve. Unlike the traced solver, which
    assumes a strongly convex loss, a problem whose Newton direction does not
    descend (an indefinite or singular Hessian) takes the steepest-descent
    direction instead, so a non-convex start still makes progress.

    Returns
    -------
    x : ndarray
        The approximate minimizers, one row per problem (non-finite rows where
        the iteration broke down).
    grad_norm : ndarray
        Their gradient norms.

    Examples
    --------
    >>> import numpy as np
    >>> def system(x):  # two quadratics, 0.5 * a * x**2 - x
    ...     a = np.array([[2.0], [4.0]])
    ...     return 0.5 * np.sum(a * x**2 - 2 * x, 1), a * x - 1, a[:, :, None]
    >>> x, norm = host_newton_minimize(system, np.zeros((2, 1)), tol=1e-10)
    >>> x.ravel().tolist()
    [0.5, 0.25]
    """
    x = np.asarray(init, dtype=np.float64)
    value, grad, hessian = (np.asarray(a, np.float64) for a in system(x))
    norm = np.linalg.norm(grad, axis=1)
    threshold = (stopping_threshold(tol, reduction, norm, np) if reduction > 0
                 else np.full(len(x), tol))
    for _ in range(maxiter):
        active = (norm >= threshold) & np.isfinite(norm)
        if not active.any():
            break
        direction = np.where(active[:, None], _newton_direction(hessian, grad), 0.0)
        slope = np.sum(grad * direction, axis=1)
        step = np.ones(len(x))
        for _ in range(_MAX_HALVINGS):
            trial = x + step[:, None] * direction
            results = [np.asarray(a, np.float64) for a in system(trial)]
            trial_norm = np.linalg.norm(results[1], axis=1)
            accepted = ((results[0] <= value + _SUFFICIENT_DECREASE * step * slope)
                        | (trial_norm <= 0.5 * norm) | ~active)
            if accepted.all():
                break
            step = np.where(accepted, step, 0.5 * step)
        x, norm = trial, trial_norm
        value, grad, hessian = results
    return x, norm


def _newton_direction(hessian, grad):
    """``-H^-1 g`` per problem (batched), or ``-g`` where that does not descend
    (or ``H`` is singular even with its jitter)."""
    hessian = jittered(hessian, np)
    with np.errstate(all="ignore"):
        try:
            direction = -np.linalg.solve(hessian, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:  # one singular matrix fails the batch
            direction = np.stack([_solved_or_nan(h, g) for h, g in zip(hessian, grad,
                                                                        strict=True)])
    descends = np.sum(grad * direction, axis=1) < 0
    return np.where(descends[:, None], direction, -grad)


def _solved_or_nan(hessian, grad):
    try:
        return -np.linalg.solve(hessian, grad)
    except np.linalg.LinAlgError:
        return np.full_like(grad, np.nan)
