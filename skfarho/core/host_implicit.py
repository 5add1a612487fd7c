r"""Implicit hypergradients with host-side solvers (HOAG's original layout).

:class:`~skfarho.core.Implicit` runs L-BFGS and CG inside one traced program,
which suits accelerators and ``vmap`` but costs seconds of XLA compilation per
configuration. :class:`HostImplicit` computes the same hypergradient

.. math::

    \nabla_\lambda E = \partial_\lambda E - (\partial^2_{\lambda w} L)\, v,
    \qquad H v = \nabla_w E,

with SciPy's L-BFGS-B on the host, driving a small jitted value-and-gradient
function, followed by one jitted program for the rest (outer gradients,
conjugate gradient on Hessian-vector products in a ``while_loop``, mixed
product). The two compile in a fraction of a second each and are cached per
problem and shape, so a cold fit costs little more than a warm one.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import scipy.optimize

from skfarho.core.implicit import ImplicitWarmStart, implicit_hypergradient
from skfarho.core.linear_solve import CG
from skfarho.core.problem import HypergradResult, bind_fixed

PyTree = Any


# XLA:CPU options for these small programs, chosen by measurement (digits and the
# 500-feature problem of benchmarks/bench_vs_search.py, 2 cores): LLVM level 2
# and one code-generation split compiled in about the default time (1.0-1.3 s
# for both programs) and ran warm fits 20-25% faster than the defaults; level 0
# compiled a third faster but ran 40-50% slower.
_FAST_COMPILE = {"xla_backend_optimization_level": 2,
                 "xla_cpu_parallel_codegen_split_count": 1}


@functools.lru_cache(maxsize=64)
def host_programs(problem, max_linear_iter=200):
    """The two jitted pieces of the host-side implicit method, cached.

    ``inner_value_and_grad(params, hparams, fixed, inner_data)`` feeds SciPy's
    L-BFGS-B; ``hypergradient(params, adjoint, tol, hparams, fixed, inner_data,
    outer_data)`` runs conjugate gradient on Hessian-vector products inside one
    program (warm started from ``adjoint``) and returns the outer value, the
    hypergradient and the new adjoint. Learned ``hparams`` and ``fixed`` ones
    are separate traced arguments, so new values never recompile.
    """

    def inner_value_and_grad(params, hparams, fixed, inner_data):
        bound = bind_fixed(problem, fixed)
        return jax.value_and_grad(bound.inner_loss)(params, hparams, *inner_data)

    def hypergradient(params, adjoint, tol, hparams, fixed, inner_data, outer_data):
        solver = CG(max_linear_iter, differentiable=False)
        return implicit_hypergradient(bind_fixed(problem, fixed), hparams, params,
                                      inner_data, outer_data, solver, adjoint, tol)

    options = _FAST_COMPILE if jax.default_backend() == "cpu" else None
    return {name: jax.jit(fun, compiler_options=options) for name, fun in (
        ("inner_value_and_grad", inner_value_and_grad),
        ("hypergradient", hypergradient))}


class _Flat:
    """Flatten a pytree of arrays to one float64 vector and back (NumPy)."""

    def __init__(self, template):
        leaves, self.treedef = jax.tree_util.tree_flatten(template)
        self.shapes = [np.shape(leaf) for leaf in leaves]
        self.splits = np.cumsum([int(np.prod(s)) for s in self.shapes])[:-1]

    def ravel(self, tree):
        leaves = jax.tree_util.tree_leaves(tree)
        return np.concatenate([np.ravel(np.asarray(leaf, np.float64))
                               for leaf in leaves])

    def unravel(self, vector):
        parts = np.split(vector, self.splits)
        return jax.tree_util.tree_unflatten(
            self.treedef, [p.reshape(s) for p, s in zip(parts, self.shapes,
                                                       strict=True)])


def _all_finite(*trees):
    return all(np.all(np.isfinite(np.asarray(leaf)))
               for tree in trees for leaf in jax.tree_util.tree_leaves(tree))


@dataclass(frozen=True)
class HostImplicit:
    """Implicit hypergradient with SciPy L-BFGS-B and CG on the host (HOAG).

    Same result as :class:`~skfarho.core.Implicit` with :class:`~skfarho.core.CG`,
    same signature, but not traceable (the inner solve is SciPy's): use it
    eagerly, through :func:`~skfarho.core.minimize_hyperparameters` (which runs
    its outer loop in Python for it) or through :class:`~skfarho.core.Batched`
    (a Python loop over the batch). Choose it when compilation time dominates
    (small and medium problems on CPU, a fresh process); choose
    :class:`Implicit` to ``jit`` or ``vmap`` the whole hypergradient.

    Parameters
    ----------
    tol : float, default=1e-6
        Inner tolerance (Euclidean norm of the gradient) and relative residual
        of CG, when the caller passes none.
    max_inner_iter : int, default=1000
        L-BFGS-B iteration budget.
    max_linear_iter : int, default=200
        CG iteration budget.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem, HostImplicit
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h: 0.5 * jnp.sum((w - h) ** 2),
    ...     outer_loss=lambda w, h: 0.5 * jnp.sum((w - 1.0) ** 2),
    ...     init_params=lambda h: jnp.zeros(2),
    ... )
    >>> HostImplicit()(problem, jnp.array([3.0, 0.0]), (), ()).grad.round(4).tolist()
    [2.0, -1.0]
    """

    tol: float = 1e-6
    max_inner_iter: int = 1000
    max_linear_iter: int = 200

    on_host = True  # not traceable: callers loop in Python instead of jit / vmap

    def init_warm_start(self, problem, hparams, inner_data):
        """``init_params(hparams)`` and a zero adjoint, as NumPy arrays."""
        params = jax.tree_util.tree_map(np.asarray, problem.init_params(hparams))
        return ImplicitWarmStart(params, jax.tree_util.tree_map(np.zeros_like, params))

    def solve_inner(self, problem, hparams, inner_data, warm_start=None, tol=None,
                    *, fixed=None):
        """``w*(hparams)`` by L-BFGS-B from the warm start (or ``init_params``)."""
        fixed = {} if fixed is None else fixed
        tol = self.tol if tol is None else float(tol)
        if warm_start is None:
            init = bind_fixed(problem, fixed).init_params(hparams)
        else:
            init = warm_start.params
        flat = _Flat(init)
        value_and_grad = host_programs(problem, self.max_linear_iter)[
            "inner_value_and_grad"]
        inner_data = jax.device_put(inner_data)

        last = {}

        def fun(vector):
            value, grad = value_and_grad(flat.unravel(vector), hparams, fixed,
                                         inner_data)
            grad = flat.ravel(grad)
            last.update(x=vector.copy(), grad_norm=np.linalg.norm(grad))
            return float(value), grad

        def stop_at_tolerance(intermediate_result):
            # Implicit's criterion: the gradient's Euclidean norm below tol
            if (np.array_equal(intermediate_result.x, last["x"])
                    and last["grad_norm"] < tol):
                raise StopIteration

        x0 = flat.ravel(init)
        value, _ = fun(x0)
        if not np.isfinite(value) or last["grad_norm"] < tol:
            return flat.unravel(x0)
        # gtol (on the largest entry) at tol / sqrt(size) is a fallback: it
        # implies the Euclidean criterion, which the callback checks first
        solution = scipy.optimize.minimize(
            fun, x0, jac=True, method="L-BFGS-B", callback=stop_at_tolerance,
            options={"gtol": tol / np.sqrt(x0.size), "ftol": 1e-15,
                     "maxiter": self.max_inner_iter, "maxcor": 10})
        return flat.unravel(solution.x)

    def __call__(self, problem, hparams, inner_data, outer_data, warm_start=None,
                 tol=None, *, fixed=None) -> HypergradResult:
        """Outer value and hypergradient at the approximate inner minimum."""
        fixed = {} if fixed is None else fixed
        tol = self.tol if tol is None else float(tol)
        inner_data, outer_data = jax.device_put((inner_data, outer_data))
        params = self.solve_inner(problem, hparams, inner_data, warm_start, tol,
                                  fixed=fixed)
        if warm_start is None:
            adjoint = jax.tree_util.tree_map(np.zeros_like, params)
        else:
            adjoint = warm_start.adjoint
        program = host_programs(problem, self.max_linear_iter)["hypergradient"]
        value, grad, adjoint = jax.tree_util.tree_map(np.asarray, program(
            params, adjoint, tol, hparams, fixed, inner_data, outer_data))
        return HypergradResult(value, grad, params, ImplicitWarmStart(params, adjoint),
                               np.bool_(_all_finite(value, grad, params)))
