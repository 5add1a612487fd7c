"""The implicit method with host-side solvers: ``Implicit(inner_solver="scipy")``
and ``Implicit(inner_solver="host_newton")``.

HOAG's original layout (as jaxopt's ``ScipyWrapper``): SciPy's L-BFGS-B solves
the inner problem on the host, calling a small jitted value-and-gradient
program; then one jitted program solves the linear system (CG by default) and
returns the outer value, the hypergradient and the adjoint, under the same
rule as the traced :class:`~skfarho.core.Implicit`
(:func:`~skfarho.core.implicit.implicit_hypergradient`). The hypergradient
program compiles on a worker thread while the first inner solve runs
(:mod:`skfarho.core.compile_ahead`).

:func:`host_call_batch` solves a batch of inner problems (folds) at once: one
L-BFGS-B on the sum of their losses over a ``vmap``-ped value-and-gradient
program, then the one-problem hypergradient program once per fold, on the
batch's data (which stays on the device; the program takes its fold out by
index). Measured on the 5-fold fits of ``benchmarks/bench_vs_search.py`` (2
cores, digits): that program compiled in 0.6-0.7 s where the hypergradient
program ``vmap``-ped over the folds took 0.9-1.0 s (and, looped over the folds
with ``lax.map`` inside one program, 1.0-1.1 s); each fold's conjugate gradient
stops on its own, where a ``vmap``-ped ``while_loop`` runs every fold as long
as the slowest.

``inner_solver="host_newton"`` replaces L-BFGS-B by damped Newton steps
(:func:`~skfarho.core.newton.host_newton_minimize`) over a jitted program that
returns each problem's value, gradient and Hessian (:func:`newton_program`); with
a direct linear solver (:class:`~skfarho.core.Cholesky`, its default) nothing
stops per problem, and one ``vmap``-ped hypergradient call serves the batch.
"""

from __future__ import annotations

import functools
import weakref

import jax
import numpy as np
import optax

from skfarho.core.compile_ahead import (
    compile_in_background,
    compiler_options,
    wait_compiled,
    work_of,
)
from skfarho.core.implicit import Implicit, ImplicitWarmStart, implicit_hypergradient
from skfarho.core.inner_solve import Flattener, scipy_lbfgs_minimize
from skfarho.core.linear_solve import CG, Cholesky
from skfarho.core.newton import host_newton_minimize, newton_system
from skfarho.core.precision import floats_as
from skfarho.core.problem import HypergradResult, bind_fixed

__all__ = ["HostImplicit", "host_call", "host_call_batch", "host_programs",
           "host_solve_inner", "host_solve_programs", "newton_program"]

_DEFAULT_SOLVER = CG(200, differentiable=False)


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


def host_programs(problem, linear_solver=_DEFAULT_SOLVER, batched=False,
                  work=None) -> dict:
    """The two jitted programs of ``Implicit(inner_solver="scipy")``, cached.

    ``inner_value_and_grad(params, hparams, fixed, inner_data)`` feeds SciPy's
    L-BFGS-B (and the estimators' final fit); with ``batched``, it is
    ``vmap``-ped over a leading axis of problems of the parameters and data.
    ``hypergradient(params, adjoint, tol, hparams, fixed, inner_data,
    outer_data)`` runs ``linear_solver`` on Hessian-vector products inside one
    program (warm started from ``adjoint``) and returns the outer value, the
    hypergradient and the new adjoint, for one problem; with ``batched`` it
    takes the problem's index first, ``hypergradient(index, params, adjoint,
    tol, hparams, fixed, inner_data, outer_data)``, and that problem's
    ``params`` and ``adjoint`` with the whole batch's data (a batch calls it
    once per problem, so that each conjugate gradient stops on its own);
    ``batched="all"`` ``vmap``-s it over the batch instead (one call, for a
    direct solver such as :class:`~skfarho.core.Cholesky`). Learned
    ``hparams`` and ``fixed`` ones are separate traced arguments, so new values
    never recompile. ``work`` (rows times parameters of a call,
    :func:`~skfarho.core.compile_ahead.work_of`) picks their XLA options
    (:func:`~skfarho.core.compile_ahead.compiler_options`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h, x: 0.5 * jnp.sum((w - h * x) ** 2),
    ...     outer_loss=lambda w, h, x: 0.5 * jnp.sum((w - 1.0) ** 2),
    ...     init_params=lambda h: jnp.zeros(2),
    ... )
    >>> sorted(host_programs(problem, batched=True))
    ['hypergradient', 'inner_value_and_grad']
    """
    options = tuple(sorted((compiler_options(work) or {}).items()))
    return {"inner_value_and_grad": _inner_program(problem, batched, options),
            "hypergradient": _hypergradient_program(problem, linear_solver,
                                                    batched, options)}


@functools.lru_cache(maxsize=64)
def _inner_program(problem, batched, options):
    def inner_value_and_grad(params, hparams, fixed, inner_data):
        bound = bind_fixed(problem, fixed)
        return jax.value_and_grad(bound.inner_loss)(params, hparams, *inner_data)

    if batched:
        inner_value_and_grad = jax.vmap(inner_value_and_grad,
                                        in_axes=(0, None, None, 0))
    return jax.jit(inner_value_and_grad, compiler_options=dict(options) or None)


@functools.lru_cache(maxsize=64)
def _hypergradient_program(problem, linear_solver, batched, options):
    def hypergradient(params, adjoint, tol, hparams, fixed, inner_data, outer_data):
        return implicit_hypergradient(bind_fixed(problem, fixed), hparams, params,
                                      inner_data, outer_data, linear_solver, adjoint,
                                      tol)

    def problem_of_batch(index, params, adjoint, tol, hparams, fixed, inner_data,
                         outer_data):
        # the batch's data stays on the device; one problem is taken out inside
        inner_data, outer_data = jax.tree_util.tree_map(
            lambda leaf: jax.lax.dynamic_index_in_dim(leaf, index, keepdims=False),
            (inner_data, outer_data))
        return hypergradient(params, adjoint, tol, hparams, fixed, inner_data,
                             outer_data)

    if batched == "all":  # every problem at once (a direct linear solver)
        hypergradient = jax.vmap(hypergradient,
                                 in_axes=(0, 0, None, None, None, 0, 0))
    return jax.jit(problem_of_batch if batched is True else hypergradient,
                   compiler_options=dict(options) or None)


def newton_program(problem, batched=False, work=None):
    """The jitted Newton system of ``Implicit(inner_solver="host_newton")``, cached.

    ``system(params, hparams, fixed, inner_data) -> (value, grad, hessian)``:
    the inner loss, its gradient and Hessian in the flattened parameters
    (:func:`~skfarho.core.newton.newton_system`); with ``batched``,
    ``vmap``-ped over a leading axis of problems.
    :func:`~skfarho.core.newton.host_newton_minimize` drives it. ``work`` is
    that of a value-and-gradient pass (:func:`~skfarho.core.compile_ahead.work_of`);
    the Hessian takes one per parameter, counted in choosing the XLA options.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h, x: 0.5 * jnp.sum(h * (w - x) ** 2),
    ...     outer_loss=lambda w, h, x: 0.5 * jnp.sum((w - 1.0) ** 2),
    ...     init_params=lambda h: jnp.zeros(2),
    ... )
    >>> value, grad, hessian = newton_program(problem)(jnp.zeros(2), 2.0, {},
    ...                                                (jnp.ones(2),))
    >>> float(value), grad.tolist(), hessian.tolist()
    (2.0, [-2.0, -2.0], [[2.0, 0.0], [0.0, 2.0]])
    """
    options = tuple(sorted((compiler_options(work) or {}).items()))
    return _newton_program(problem, batched, options)


def host_solve_programs(method, problem, params, inner_data) -> list:
    """The jitted programs a final fit of one problem with ``params`` on
    ``inner_data`` calls, with their XLA options, to compile ahead: the
    value-and-gradient program (L-BFGS-B's, and the fit's convergence checks),
    and the Newton system where :func:`host_solve_inner` uses it."""
    work = work_of(params, inner_data)
    programs = [host_programs(problem, work=work)["inner_value_and_grad"]]
    if method.inner_solver == "host_newton":
        programs.append(newton_program(problem, False,
                                       _hessian_work(work, optax.tree.size(params))))
    return programs


def _hessian_work(work, size):
    """A Newton system's work: a value-and-gradient pass per parameter."""
    return None if work is None else work * size


@functools.lru_cache(maxsize=64)
def _newton_program(problem, batched, options):
    def system(params, hparams, fixed, inner_data):
        bound = bind_fixed(problem, fixed)
        return newton_system(lambda w: bound.inner_loss(w, hparams, *inner_data),
                             params)

    if batched:
        system = jax.vmap(system, in_axes=(0, None, None, 0))
    return jax.jit(system, compiler_options=dict(options) or None)


def host_solve_inner(method, problem, hparams, inner_data, init, tol, fixed=None):
    """``method.solve_inner`` of a host-side ``method``: SciPy's L-BFGS-B over
    the cached value-and-gradient program, or the Newton program, from
    ``init`` (NumPy out)."""
    params, _ = _solve(problem, init, float(tol), method, hparams,
                       {} if fixed is None else fixed, jax.device_put(inner_data),
                       batched=False, work=work_of(init, inner_data))
    return params


def host_call(method, problem, hparams, inner_data, outer_data, warm_start=None,
              tol=None, fixed=None) -> HypergradResult:
    """``method(problem, ...)`` for a host-side ``method``: NumPy in, NumPy out."""
    return _hypergradient(method, problem, hparams, inner_data, outer_data,
                          warm_start, tol, fixed, batched=False)


def host_call_batch(method, problem, hparams, inner_data, outer_data,
                    warm_start=None, tol=None, fixed=None) -> HypergradResult:
    """The host-side implicit method on a batch of inner problems, solved at once.

    Every array of ``inner_data``, ``outer_data`` and ``warm_start`` has a
    leading batch axis (one entry per fold). SciPy's L-BFGS-B minimizes the sum
    of the problems' inner losses (they share no parameters) until each one's
    gradient norm is below ``tol``, calling one ``vmap``-ped value-and-gradient
    program per iteration; then the one-problem hypergradient program solves
    each problem's linear system in turn. Same result as looping ``method`` over
    the batch, up to the tolerances: the per-problem entries (not averaged) of
    a :class:`~skfarho.core.HypergradResult`, NumPy. :class:`~skfarho.core.Batched`
    calls it for a batch of more than one.

    Why one SciPy run for the batch: each L-BFGS-B iteration then costs one
    program call for all folds instead of one per fold, which is what small
    problems spend their time on (Python and dispatch, not arithmetic): when it
    replaced the loop over folds, warm 5-fold fits of
    ``benchmarks/bench_vs_search.py`` took a third of the time on diabetes and
    wine and half on breast_cancer, and about the same on digits, whose time is
    the products themselves.
    """
    return _hypergradient(method, problem, hparams, inner_data, outer_data,
                          warm_start, tol, fixed, batched=True)


def _hypergradient(method, problem, hparams, inner_data, outer_data, warm_start,
                   tol, fixed, batched):
    tol = float(method.tol if tol is None else tol)
    fixed = {} if fixed is None else fixed
    if warm_start is None:
        start = jax.tree_util.tree_map(
            np.asarray, bind_fixed(problem, fixed).init_params(hparams))
        if batched:
            count = _batch_size(inner_data)
            start = jax.tree_util.tree_map(
                lambda leaf: np.repeat(leaf[None], count, axis=0), start)
        warm_start = ImplicitWarmStart(start, jax.tree_util.tree_map(np.zeros_like,
                                                                     start))
    if method.float32_tol is not None and tol >= method.float32_tol:
        result = _hypergradient_at(np.float32, method, problem, hparams, fixed,
                                   inner_data, outer_data, warm_start, tol, batched)
        if isinstance(result, HypergradResult):
            return result
        warm_start = result  # the float32 solve stopped short of tol: on in float64
    return _hypergradient_at(None, method, problem, hparams, fixed, inner_data,
                             outer_data, warm_start, tol, batched)


def _hypergradient_at(dtype, method, problem, hparams, fixed, inner_data, outer_data,
                      warm_start, tol, batched):
    """The host implicit method's result, its programs run on ``dtype``
    arguments (None: as given). In float32, an inner solve that ends above
    ``tol`` (float32's rounding of the loss above it) returns its solution as
    an :class:`ImplicitWarmStart` instead, to be finished in float64."""
    hparams, fixed = floats_as(dtype, (hparams, fixed))
    if dtype is not None:
        inner_data, outer_data = _float32_copy(inner_data), _float32_copy(outer_data)
    one = _take(0, warm_start.params) if batched else warm_start.params
    adjoint = floats_as(dtype, warm_start.adjoint)
    # a direct linear solve has no per-problem stopping: one call for the batch
    at_once = batched and isinstance(method.linear_solver, Cholesky)
    programs = host_programs(problem, method.linear_solver,
                             "all" if at_once else batched, work_of(one, inner_data))
    # on the device once, not at each of the many program calls below
    hparams, fixed, inner_data, outer_data = jax.device_put(
        (hparams, fixed, inner_data, outer_data))
    hypergradient = programs["hypergradient"]
    linear_tol = tol * method.linear_tol_factor

    def arguments(k, params):
        """The hypergradient program's arguments for problem ``k`` (or the one,
        or the batch)."""
        params = floats_as(dtype, params)
        if not batched or at_once:
            return (params, adjoint, linear_tol, hparams, fixed, inner_data,
                    outer_data)
        return (np.int32(k), _take(k, params), _take(k, adjoint), linear_tol,
                hparams, fixed, inner_data, outer_data)

    # the hypergradient program compiles on another core while the inner solve runs
    compiling = compile_in_background(hypergradient, arguments(0, adjoint))
    params, grad_norm = _solve(problem, warm_start.params, tol, method, hparams,
                               fixed, inner_data, batched, work_of(one, inner_data),
                               dtype)
    if dtype is not None and grad_norm > tol:
        return ImplicitWarmStart(params, warm_start.adjoint)
    wait_compiled(compiling)  # a failed warm-up compiles when called
    calls = 1 if at_once or not batched else _batch_size(inner_data)
    results = [jax.tree_util.tree_map(np.asarray, hypergradient(*arguments(k, params)))
               for k in range(calls)]
    value, grad, adjoint = floats_as(np.float64, (
        results[0] if calls == 1 else jax.tree_util.tree_map(
            lambda *leaves: np.stack(leaves), *results)))
    leaves = jax.tree_util.tree_leaves((value, grad, params))
    if batched:
        finite = np.logical_and.reduce([
            np.all(np.isfinite(leaf.reshape(len(value), -1)), axis=1)
            for leaf in leaves])
    else:
        finite = np.bool_(all(np.all(np.isfinite(leaf)) for leaf in leaves))
    return HypergradResult(value, grad, params, ImplicitWarmStart(params, adjoint),
                           finite)


# float32 copies of data, by the identity of their leaves: an outer loop passes
# the same folds at every step (cast once a fit, not once a step); an entry goes
# when its data does
_FLOAT32_COPIES: dict = {}


def _float32_copy(data):
    """``data``'s floating-point leaves in float32, cached while ``data`` lives."""
    leaves = jax.tree_util.tree_leaves(data)
    key = tuple(id(leaf) for leaf in leaves)
    cached = _FLOAT32_COPIES.get(key)
    if cached is not None:
        return cached[1]
    copy = floats_as(np.float32, data)
    try:
        references = [weakref.ref(leaf, lambda _: _FLOAT32_COPIES.pop(key, None))
                      for leaf in leaves]
    except TypeError:  # a leaf without weak references: not cached
        return copy
    _FLOAT32_COPIES[key] = (references, copy)
    return copy


def _batch_size(data) -> int:
    """The number of problems of batched ``data`` (its leading axis)."""
    return len(jax.tree_util.tree_leaves(data)[0])


def _take(k, tree):
    """Problem ``k`` of a batched pytree of NumPy arrays."""
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[k], tree)


def _solve(problem, init, tol, method, hparams, fixed, inner_data, batched, work,
           dtype=None):
    """The inner solution from ``init`` (one problem, or each of a batch's),
    and its largest gradient norm; the programs get parameters as ``dtype``."""
    if method.inner_solver == "host_newton":
        return _newton_solve(problem, init, tol, method, hparams, fixed, inner_data,
                             batched, work)
    program = host_programs(problem, batched=batched,
                            work=work)["inner_value_and_grad"]

    def value_and_grad(params):
        return program(floats_as(dtype, params), hparams, fixed, inner_data)

    options = {"maxiter": method.max_inner_iter,
               "reduction": method.warm_start_reduction, "return_grad_norm": True}
    if not batched:
        return scipy_lbfgs_minimize(value_and_grad, init, tol, **options)

    def summed(params):
        values, grads = value_and_grad(params)
        return np.sum(np.asarray(values)), grads

    return scipy_lbfgs_minimize(summed, init, tol, grad_norm=_largest_norm,
                                ftol=0.0, **options)


def _largest_norm(grads):
    """The largest per-problem Euclidean norm of batched ``grads``."""
    squares = sum(np.sum(np.reshape(leaf, (len(leaf), -1)) ** 2, axis=1)
                  for leaf in jax.tree_util.tree_leaves(grads))
    return float(np.sqrt(np.max(squares)))


def _newton_solve(problem, init, tol, method, hparams, fixed, inner_data, batched,
                  work):
    """The inner solution from ``init`` by Newton's method (NumPy)."""
    flat = Flattener(init, batched=batched)
    program = newton_program(problem, batched, _hessian_work(work, flat.size))

    def system(vectors):
        params = flat.unravel(vectors if batched else vectors[0])
        results = program(params, hparams, fixed, inner_data)
        return results if batched else tuple(np.asarray(r)[None] for r in results)

    vectors = flat.ravel(init)
    solution, norms = host_newton_minimize(
        system, vectors if batched else vectors[None], tol, method.max_inner_iter,
        method.warm_start_reduction)
    return flat.unravel(solution if batched else solution[0]), float(np.max(norms))
