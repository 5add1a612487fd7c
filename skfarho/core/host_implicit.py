"""``HostImplicit``: the implicit method with host-side solvers, by its former name.

The host-side solve is now a choice of inner solver of
:class:`~skfarho.core.Implicit`: ``Implicit(inner_solver="scipy")`` runs SciPy's
L-BFGS-B on the host over a small jitted value-and-gradient program, then one
jitted program for conjugate gradient and the rest, under the same
implicit-differentiation rule as the traced ``Implicit()``. :func:`HostImplicit`
builds it from the arguments the former class took, so code written for it keeps
working.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from skfarho.core.implicit import (
    Implicit,
    ImplicitWarmStart,
    compile_in_background,
    compiler_options,
    host_programs,
    implicit_hypergradient,
    wait_compiled,
)
from skfarho.core.inner_solve import scipy_lbfgs_minimize
from skfarho.core.linear_solve import CG
from skfarho.core.problem import HypergradResult, bind_fixed

__all__ = ["HostImplicit", "host_call_batch", "host_programs"]


def HostImplicit(tol: float = 1e-6, max_inner_iter: int = 1000,  # noqa: N802
                 max_linear_iter: int = 200) -> Implicit:
    """``Implicit(inner_solver="scipy")``, with the former class's arguments.

    Same hypergradient as :class:`~skfarho.core.Implicit` with
    :class:`~skfarho.core.CG`, but not traceable (``traceable`` is False): use it
    eagerly, through :func:`~skfarho.core.minimize_hyperparameters` or
    :class:`~skfarho.core.Batched`, which loop in Python for it.

    Parameters
    ----------
    tol : float, default=1e-6
        Inner tolerance (Euclidean norm of the gradient) and relative residual
        of CG, when the caller passes none.
    max_inner_iter : int, default=1000
        L-BFGS-B iteration budget.
    max_linear_iter : int, default=200
        CG iteration budget.

    Returns
    -------
    Implicit
        ``Implicit(CG(max_linear_iter, differentiable=False), tol, max_inner_iter,
        inner_solver="scipy")``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem, HostImplicit, Implicit
    >>> HostImplicit() == Implicit(inner_solver="scipy")
    True
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h: 0.5 * jnp.sum((w - h) ** 2),
    ...     outer_loss=lambda w, h: 0.5 * jnp.sum((w - 1.0) ** 2),
    ...     init_params=lambda h: jnp.zeros(2),
    ... )
    >>> HostImplicit()(problem, jnp.array([3.0, 0.0]), (), ()).grad.round(4).tolist()
    [2.0, -1.0]
    """
    return Implicit(CG(max_linear_iter, differentiable=False), tol, max_inner_iter,
                    inner_solver="scipy")


def host_call_batch(method: Implicit, problem, hparams, inner_data, outer_data,
                    warm_start, tol=None, fixed=None) -> HypergradResult:
    """The host-side implicit method on a batch of inner problems, solved at once.

    Every array of ``inner_data``, ``outer_data`` and ``warm_start`` has a
    leading batch axis (one entry per fold). SciPy's L-BFGS-B minimizes the sum
    of the problems' inner losses (they share no parameters) until each one's
    gradient norm is below ``tol``, calling one ``vmap``-ped value-and-gradient
    program per iteration instead of one program per problem; then one
    ``vmap``-ped program solves every problem's linear system. Same result as
    looping ``method`` over the batch, up to the tolerances: the per-problem
    entries (not averaged) of a :class:`~skfarho.core.HypergradResult`, NumPy.
    :class:`~skfarho.core.Batched` calls it for a batch of more than one.

    Measured on the default 5-fold fits of ``benchmarks/bench_vs_search.py``
    (warm, 2 cores, against the loop over folds): diabetes 0.45 -> 0.15 s,
    wine 0.26 -> 0.11 s, breast_cancer 0.18 -> 0.09 s; digits, whose time is
    the products themselves, 1.50 -> 1.43 s.
    """
    tol = float(method.tol if tol is None else tol)
    fixed = {} if fixed is None else fixed
    inner_data, outer_data = jax.device_put((inner_data, outer_data))
    value_and_grad, hypergradient = _batch_programs(problem, method.linear_solver)
    if warm_start is None:
        size = len(jax.tree_util.tree_leaves(inner_data)[0])
        start = jax.tree_util.tree_map(
            lambda leaf: np.repeat(np.asarray(leaf)[None], size, axis=0),
            bind_fixed(problem, fixed).init_params(hparams))
        warm_start = ImplicitWarmStart(start, jax.tree_util.tree_map(np.zeros_like,
                                                                     start))
    compiled = compile_in_background(hypergradient, (
        warm_start.adjoint, warm_start.adjoint, tol, hparams, fixed, inner_data,
        outer_data))

    def summed(params):
        values, grads = value_and_grad(params, hparams, fixed, inner_data)
        return np.sum(np.asarray(values)), grads

    params = scipy_lbfgs_minimize(summed, warm_start.params, tol,
                                  method.max_inner_iter, grad_norm=_largest_norm,
                                  ftol=0.0)
    wait_compiled(compiled)  # a failed warm-up compiles below
    value, grad, adjoint = jax.tree_util.tree_map(np.asarray, hypergradient(
        params, warm_start.adjoint, tol, hparams, fixed, inner_data, outer_data))
    finite = np.logical_and.reduce([
        np.all(np.isfinite(leaf.reshape(len(value), -1)), axis=1)
        for leaf in jax.tree_util.tree_leaves((value, grad, params))])
    return HypergradResult(value, grad, params, ImplicitWarmStart(params, adjoint),
                           finite)


def _largest_norm(grads):
    """The largest per-problem Euclidean norm of batched ``grads``."""
    squares = sum(np.sum(np.reshape(leaf, (len(leaf), -1)) ** 2, axis=1)
                  for leaf in jax.tree_util.tree_leaves(grads))
    return float(np.sqrt(np.max(squares)))


@functools.lru_cache(maxsize=64)
def _batch_programs(problem, linear_solver):
    def value_and_grad(params, hparams, fixed, inner_data):
        bound = bind_fixed(problem, fixed)
        return jax.value_and_grad(bound.inner_loss)(params, hparams, *inner_data)

    def hypergradient(params, adjoint, tol, hparams, fixed, inner_data, outer_data):
        return implicit_hypergradient(bind_fixed(problem, fixed), hparams, params,
                                      inner_data, outer_data, linear_solver, adjoint,
                                      tol)

    options = compiler_options()
    return (jax.jit(jax.vmap(value_and_grad, in_axes=(0, None, None, 0)),
                    compiler_options=options),
            jax.jit(jax.vmap(hypergradient, in_axes=(0, 0, None, None, None, 0, 0)),
                    compiler_options=options))
