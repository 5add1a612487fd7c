"""Solving the inner problem to a tolerance with L-BFGS, for HOAG.

Two solvers, with the same stopping rule (the gradient's Euclidean norm below
``tol``): :func:`lbfgs_minimize` (optax, traced, in a ``while_loop``) and
:func:`scipy_lbfgs_minimize` (SciPy's L-BFGS-B on the host, driving a jitted
value-and-gradient function). :class:`~skfarho.core.Implicit` chooses by its
``inner_solver``, among these and Newton's method (:mod:`skfarho.core.newton`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
import scipy.optimize
import threadpoolctl

PyTree = Any


def lbfgs_minimize(
    fun: Callable[[PyTree], jax.Array],
    init_params: PyTree,
    tol,
    maxiter: int = 1000,
    memory_size: int = 10,
    reduction: float = 0.0,
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
    reduction : float, default=0.0
        Also reduce the gradient norm to ``reduction`` times its value at
        ``init_params`` (see :func:`stopping_threshold`).

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

    if reduction > 0:
        tol = stopping_threshold(tol, reduction,
                                 otu.tree_norm(jax.grad(fun)(init_params)), jnp)
    inf = jnp.full((), jnp.inf, otu.tree_norm(init_params).dtype)
    init = (init_params, optimizer.init(init_params), inf)
    params, _, grad_norm = jax.lax.while_loop(keep_going, step, init)
    return params, grad_norm


def stopping_threshold(tol, reduction, initial_norm, xp=np):
    """The gradient norm an inner solve stops at: ``tol``, and ``reduction``
    times the norm at the start, down to a floor of ``tol / 1000``.

    A warm start that already meets ``tol`` (the previous solution, after a small
    change of the hyperparameters) then still moves, where it would be returned
    unchanged; the floor keeps an exact start from asking for the impossible.

    Examples
    --------
    >>> float(stopping_threshold(1e-3, 0.1, 1.0))  # a cold start: tol
    0.001
    >>> float(stopping_threshold(1e-3, 0.1, 2e-4))  # a warm start meeting tol
    2e-05
    >>> float(stopping_threshold(1e-3, 0.1, 0.0))  # an exact start
    1e-06
    """
    return xp.minimum(tol, xp.maximum(reduction * initial_norm, 1e-3 * tol))


class Flattener:
    """Flatten a pytree of arrays to one float64 vector and back (NumPy).

    With ``batched``, every leaf of ``template`` has a leading axis of problems:
    :meth:`ravel` gives one row per problem, ``(problems, size)``.

    Examples
    --------
    >>> import numpy as np
    >>> flat = Flattener({"w": np.zeros((2, 3)), "b": np.zeros(2)}, batched=True)
    >>> vectors = flat.ravel({"w": np.ones((2, 3)), "b": np.zeros(2)})
    >>> vectors.shape, flat.unravel(vectors)["w"].shape, flat.size
    ((2, 4), (2, 3), 4)
    """

    def __init__(self, template, batched=False):
        leaves, self.treedef = jax.tree_util.tree_flatten(template)
        self.batched = batched
        self.shapes = [np.shape(leaf)[1:] if batched else np.shape(leaf)
                       for leaf in leaves]
        sizes = [int(np.prod(shape)) for shape in self.shapes]
        self.size = sum(sizes)
        self.splits = np.cumsum(sizes)[:-1]

    def ravel(self, tree):
        leaves = [np.asarray(leaf, np.float64)
                  for leaf in jax.tree_util.tree_leaves(tree)]
        if self.batched:
            return np.concatenate([leaf.reshape(len(leaf), -1) for leaf in leaves],
                                  axis=1)
        return np.concatenate([np.ravel(leaf) for leaf in leaves])

    def unravel(self, vector):
        parts = np.split(vector, self.splits, axis=-1)
        lead = vector.shape[:1] if self.batched else ()
        return jax.tree_util.tree_unflatten(
            self.treedef, [part.reshape(lead + shape)
                           for part, shape in zip(parts, self.shapes, strict=True)])


def scipy_lbfgs_minimize(
    value_and_grad: Callable[[PyTree], tuple[Any, PyTree]],
    init_params: PyTree,
    tol: float,
    maxiter: int = 1000,
    memory_size: int = 30,
    grad_norm: Callable[[PyTree], float] | None = None,
    ftol: float = 1e-15,
    reduction: float = 0.0,
    return_grad_norm: bool = False,
) -> PyTree:
    """Minimize with SciPy's L-BFGS-B on the host, stopping as :func:`lbfgs_minimize`.

    Not traceable: each iteration calls ``value_and_grad`` (typically a jitted
    function, so that it compiles once) and moves its result to NumPy.

    Parameters
    ----------
    value_and_grad : callable
        ``value_and_grad(params) -> (value, grad)`` of a smooth objective.
    init_params : PyTree
        Starting point; its structure and shapes are those of the result.
    tol : float
        Stop when the gradient's Euclidean norm is below ``tol``.
    maxiter : int, default=1000
        Iteration budget.
    memory_size : int, default=30
        Number of curvature pairs kept. 30 rather than SciPy's 10: on the
        ill-conditioned inner problems of wide sparse data (tf-idf, 48,000 x
        240,000, ``benchmarks/bench_sparse.py``) the final fit took 30
        evaluations instead of 248 and the whole fit 14.5 s instead of 23.5 s;
        unchanged on the dense data sets of ``bench_vs_search.py``.
    grad_norm : callable, optional
        ``grad_norm(grad) -> float`` (a pytree of NumPy arrays) in place of the
        Euclidean norm in the stopping rule; e.g. the largest of the per-problem
        norms when ``value_and_grad`` sums independent problems stacked along a
        leading axis.
    ftol : float, default=1e-15
        SciPy's stop on the relative decrease of the value (a floor of float64
        precision); 0 for sums of independent problems, whose total loses the
        digits in which one problem still decreases.
    reduction : float, default=0.0
        Also reduce the gradient norm to ``reduction`` times its value at
        ``init_params`` (see :func:`stopping_threshold`).
    return_grad_norm : bool, default=False
        Also return the gradient norm (``grad_norm``'s) at the minimizer.

    Returns
    -------
    PyTree
        The approximate minimizer, as NumPy float64 arrays (``init_params`` itself,
        flattened and back, when it already meets ``tol`` or is not finite);
        with ``return_grad_norm``, a pair of it and its gradient norm.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> fun = jax.jit(jax.value_and_grad(lambda w: jnp.sum((w - 3.0) ** 2)))
    >>> scipy_lbfgs_minimize(fun, jnp.zeros(2), tol=1e-6).round(4).tolist()
    [3.0, 3.0]
    """
    flat = Flattener(init_params)
    last = {}

    def norm_of(vector_grad):
        return (np.linalg.norm(vector_grad) if grad_norm is None else
                grad_norm(flat.unravel(vector_grad)))

    def fun(vector):
        value, grad = value_and_grad(flat.unravel(vector))
        vector_grad = flat.ravel(grad)
        last.update(x=vector.copy(), grad_norm=norm_of(vector_grad))
        return float(value), vector_grad

    def result(vector, norm):
        return (flat.unravel(vector), float(norm)) if return_grad_norm else (
            flat.unravel(vector))

    def stop_at_tolerance(intermediate_result):
        # lbfgs_minimize's criterion: the gradient's Euclidean norm below tol
        if (np.array_equal(intermediate_result.x, last["x"])
                and last["grad_norm"] < tol):
            raise StopIteration

    x0 = flat.ravel(init_params)
    value, _ = fun(x0)
    if reduction > 0:
        tol = float(stopping_threshold(tol, reduction, last["grad_norm"], np))
    if not np.isfinite(value) or last["grad_norm"] < tol:
        return result(x0, last["grad_norm"])
    # gtol (on the largest entry) at tol / sqrt(size) is a fallback: it implies
    # the Euclidean criterion, which the callback checks first
    with one_blas_thread():
        solution = scipy.optimize.minimize(
            fun, x0, jac=True, method="L-BFGS-B", callback=stop_at_tolerance,
            options={"gtol": tol / np.sqrt(x0.size), "ftol": ftol,
                     "maxiter": maxiter, "maxcor": memory_size})
    return result(solution.x, norm_of(solution.jac))


@functools.cache
def _blas_controller():
    return threadpoolctl.ThreadpoolController()


def one_blas_thread():
    """BLAS limited to one thread for the duration (scoped, then restored).

    L-BFGS-B's vector operations are far too small for threads: with
    OpenBLAS's default of one thread per core, SciPy's ``setulb`` took 3 ms a
    call instead of 0.08 ms on the 2-core development machine under load (a
    5-fold digits fit spent 1.7 s of 4.1 s in it). JAX's own thread pool is
    unaffected.
    """
    return _blas_controller().limit(limits=1, user_api="blas")
