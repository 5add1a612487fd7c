"""Solvers for the implicit method's linear system ``H v = b``.

Each solver is a value with one signature, ``solver(matvec, b, x0=None, tol=1e-6)``,
where ``matvec(v) = H v`` is a Hessian-vector product on pytrees. ``H`` is the
Hessian of the inner loss in the parameters, symmetric and, for the strongly
convex problems the implicit method is for, positive definite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import jax.scipy.sparse.linalg
from jax.flatten_util import ravel_pytree

PyTree = Any
MatVec = Callable[[PyTree], PyTree]


@dataclass(frozen=True)
class CG:
    """Conjugate gradient on Hessian-vector products (HOAG's choice).

    Warm started from ``x0`` (the previous outer step's solution). Stops at
    relative residual ``tol`` or after ``maxiter`` iterations.

    ``differentiable=True`` uses :func:`jax.scipy.sparse.linalg.cg`, whose
    solution can itself be differentiated (``custom_linear_solve``, which traces
    ``matvec`` several times); ``False`` runs a plain ``while_loop`` that traces
    it once, cheaper to compile when nothing differentiates the solve (the
    implicit hypergradient never does).
    """

    maxiter: int = 500
    differentiable: bool = True

    def __call__(self, matvec: MatVec, b: PyTree, x0: PyTree = None, tol=1e-6):
        if not self.differentiable:
            return _conjugate_gradient(matvec, b, x0, tol, self.maxiter)
        solution, _ = jax.scipy.sparse.linalg.cg(
            matvec, b, x0=x0, tol=tol, maxiter=self.maxiter
        )
        return solution


def _conjugate_gradient(matvec, b, x0, tol, maxiter):
    """Textbook CG on flattened pytrees in a ``while_loop``."""
    flat_b, unravel = ravel_pytree(b)
    x = jnp.zeros_like(flat_b) if x0 is None else ravel_pytree(x0)[0]

    def flat_matvec(v):
        return ravel_pytree(matvec(unravel(v)))[0]

    residual = flat_b - flat_matvec(x)
    squared = jnp.vdot(residual, residual)
    bound = (tol * jnp.linalg.norm(flat_b)) ** 2

    def keep_going(state):
        _, _, _, squared, k = state
        return (squared > bound) & (k < maxiter)

    def iteration(state):
        x, residual, direction, squared, k = state
        product = flat_matvec(direction)
        step = squared / jnp.vdot(direction, product)
        x = x + step * direction
        residual = residual - step * product
        new_squared = jnp.vdot(residual, residual)
        direction = residual + (new_squared / squared) * direction
        return x, residual, direction, new_squared, k + 1

    state = (x, residual, residual, squared, 0)
    x, _, _, squared, _ = jax.lax.while_loop(keep_going, iteration, state)
    # a non-finite residual stops the loop (the comparison is False): report it
    # rather than return the warm start as if it had converged
    return unravel(jnp.where(jnp.isfinite(squared), x, jnp.nan))


def _largest_eigenvalue(matvec: MatVec, b: PyTree, iterations: int) -> jax.Array:
    flat_b, unravel = ravel_pytree(b)
    vector = jnp.ones_like(flat_b) / jnp.sqrt(flat_b.size)

    def power_step(v, _):
        hv, _ = ravel_pytree(matvec(unravel(v)))
        return hv / jnp.maximum(jnp.linalg.norm(hv), 1e-30), None

    vector, _ = jax.lax.scan(power_step, vector, None, length=iterations)
    hv, _ = ravel_pytree(matvec(unravel(vector)))
    return jnp.vdot(vector, hv)


@dataclass(frozen=True)
class Neumann:
    r"""Truncated Neumann series, :math:`v = \eta \sum_{k<K} (I - \eta H)^k b`.

    The step ``eta`` is ``1 / L`` with ``L`` estimated by power iteration, so the
    series converges for positive-definite ``H``; it is cheap and biased
    (Lorraine et al., 2020). ``x0`` and ``tol`` are ignored.
    """

    steps: int = 100
    power_iterations: int = 20

    def __call__(self, matvec: MatVec, b: PyTree, x0: PyTree = None, tol=None):
        step = 1.0 / _largest_eigenvalue(matvec, b, self.power_iterations)

        def term(carry, _):
            total, power = carry
            power = jax.tree_util.tree_map(
                lambda p, hp: p - step * hp, power, matvec(power)
            )
            return (jax.tree_util.tree_map(jnp.add, total, power), power), None

        (total, _), _ = jax.lax.scan(term, (b, b), None, length=self.steps - 1)
        return jax.tree_util.tree_map(lambda t: step * t, total)


@dataclass(frozen=True)
class Cholesky:
    """Materialize ``H`` (one matvec per parameter) and solve by Cholesky.

    Exact up to rounding; for small problems (a few thousand parameters). A
    Hessian singular to rounding (a direction the loss does not depend on, such
    as a shift of all classes' intercepts in a softmax model) gets a relative
    jitter on its diagonal (:func:`cholesky_solve`).
    """

    def __call__(self, matvec: MatVec, b: PyTree, x0: PyTree = None, tol=None):
        flat_b, unravel = ravel_pytree(b)

        def flat_matvec(v):
            return ravel_pytree(matvec(unravel(v)))[0]

        hessian = jax.vmap(flat_matvec)(jnp.eye(flat_b.size, dtype=flat_b.dtype))
        return unravel(cholesky_solve(hessian, flat_b))


# added to a Hessian's diagonal, relative to its largest entry: keeps the
# Cholesky factor defined when the Hessian is singular to rounding (at least ten
# rounding units of the dtype, so that it also acts in float32)
RELATIVE_JITTER = 1e-10


def jittered(matrix, xp=jnp):
    """``matrix`` (or a batch of them, on the last two axes) symmetrized, its
    diagonal raised by ``RELATIVE_JITTER`` (or ten rounding units of its dtype,
    if more) times its largest diagonal entry; ``xp`` is ``jax.numpy`` or NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> jittered(np.array([[1.0, 2.0], [0.0, 0.0]]), np).tolist()
    [[1.0000000001, 1.0], [1.0, 1e-10]]
    """
    matrix = 0.5 * (matrix + xp.swapaxes(matrix, -1, -2))
    relative = max(RELATIVE_JITTER, 10 * float(xp.finfo(matrix.dtype).eps))
    scale = xp.max(xp.abs(xp.diagonal(matrix, axis1=-2, axis2=-1)), axis=-1)
    eye = xp.eye(matrix.shape[-1], dtype=matrix.dtype)
    return matrix + (relative * scale)[..., None, None] * eye


def cholesky_solve(matrix: jax.Array, vector: jax.Array) -> jax.Array:
    """``matrix^-1 vector`` for a symmetric positive-(semi)definite ``matrix``.

    The matrix is symmetrized and its diagonal raised (:func:`jittered`), so
    that a null direction (to rounding) gets a large finite component where the
    factorization would fail; a right-hand side orthogonal to it (the gradient
    of a loss that does not depend on it) keeps its solution there near zero.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> solution = cholesky_solve(jnp.array([[2.0, 0.0], [0.0, 4.0]]), jnp.ones(2))
    >>> [round(value, 4) for value in solution.tolist()]  # float32: jitter 1e-6
    [0.5, 0.25]
    """
    matrix = jittered(matrix)
    factor = jax.scipy.linalg.cho_factor(matrix)
    return jax.scipy.linalg.cho_solve(factor, vector)
