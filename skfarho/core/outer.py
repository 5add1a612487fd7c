"""The outer loop: any optax optimizer over the hyperparameters."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

from skfarho.core.compile_ahead import compile_when_idle, compiler_options
from skfarho.core.implicit import Implicit
from skfarho.core.method import HypergradientMethod

PyTree = Any


class DivergenceError(FloatingPointError):
    """The inner dynamics or the hypergradient stopped being finite."""


class OuterResult(NamedTuple):
    """What :func:`minimize_hyperparameters` returns.

    Attributes
    ----------
    hparams : PyTree
        The hyperparameters with the lowest outer objective seen.
    params : PyTree
        The inner parameters at those hyperparameters.
    history : dict of ndarray
        ``"value"`` (outer objective), ``"grad_norm"`` (hypergradient norm),
        ``"time"`` (seconds since the start) per outer step, and ``"hparams"``, a
        list with the hyperparameters (NumPy) at each step.
    n_steps : int
        Outer steps taken.
    converged : bool
        True when the loop stopped on the gradient or step tolerance, early
        stopping or the callback, False when it ran out of steps.
    """

    hparams: PyTree
    params: PyTree
    history: dict
    n_steps: int
    converged: bool


@functools.lru_cache(maxsize=128)
def compiled_outer_step(problem, method, optimizer, project=None):
    """One jitted outer step, cached by the static configuration.

    Data, hyperparameters, fixed hyperparameters, optimizer state, warm start and
    tolerance are traced arguments: fitting again on same-shaped data reuses the
    compiled program, which on CPU carries
    :func:`~skfarho.core.compile_ahead.compiler_options` (the fusion emitters
    off: a reverse-mode fit of breast_cancer compiled in 1.9 s instead of 2.4 s,
    for the same warm fits). For a method that is not ``traceable`` (e.g.
    ``Implicit(inner_solver="scipy")``) the step is a Python function that calls
    the method's own jitted pieces and a jitted optimizer update.

    Returns
    -------
    callable
        ``step(hparams, opt_state, warm_start, tol, inner_data, outer_data, fixed)
        -> (new_hparams, opt_state, result, grad_norm)``.
    """
    _check_method(method)
    if not method.traceable:
        return _host_outer_step(problem, method, optimizer, project)

    def step(hparams, opt_state, warm_start, tol, inner_data, outer_data, fixed):
        result = method(problem, hparams, inner_data, outer_data, warm_start, tol,
                        fixed)
        updates, opt_state = optimizer.update(result.grad, opt_state, hparams)
        new_hparams = optax.apply_updates(hparams, updates)
        if project is not None:
            new_hparams = project(new_hparams)
        return new_hparams, opt_state, result, otu.tree_norm(result.grad)

    return jax.jit(step, compiler_options=compiler_options())


@functools.lru_cache(maxsize=128)
def compiled_solve_inner(problem, method):
    """``solve(hparams, inner_data, fixed, warm_start, tol)``: ``method.solve_inner``.

    Jitted for a ``traceable`` method, the method's own eager call otherwise;
    cached by the static configuration.
    """
    _check_method(method)

    def solve(hparams, inner_data, fixed, warm_start, tol):
        return method.solve_inner(problem, hparams, inner_data, warm_start, tol, fixed)

    return (jax.jit(solve, compiler_options=compiler_options()) if method.traceable
            else solve)


@functools.lru_cache(maxsize=128)
def compiled_update(optimizer, project=None):
    """The jitted optax update (and projection) of a host-side outer step."""

    def update(grad, opt_state, hparams):
        updates, opt_state = optimizer.update(grad, opt_state, hparams)
        new_hparams = optax.apply_updates(hparams, updates)
        if project is not None:
            new_hparams = project(new_hparams)
        return new_hparams, opt_state, otu.tree_norm(grad)

    # elementwise work on the hyperparameters: compiled quickly, not well
    return jax.jit(update, compiler_options=compiler_options(work=0))


def _host_outer_step(problem, method, optimizer, project):
    update = compiled_update(optimizer, project)

    def step(hparams, opt_state, warm_start, tol, inner_data, outer_data, fixed):
        result = method(problem, hparams, inner_data, outer_data, warm_start, tol,
                        fixed)
        new_hparams, opt_state, grad_norm = update(result.grad, opt_state, hparams)
        return new_hparams, opt_state, result, grad_norm

    return step


class _SignChanges:
    """Called with each hypergradient: True once every entry has changed sign."""

    def __init__(self):
        self.first = self.changed = None

    def __call__(self, grad) -> bool:
        signs = np.concatenate([np.sign(np.ravel(leaf))
                                for leaf in jax.tree_util.tree_leaves(grad)])
        if self.first is None:
            self.first, self.changed = signs, np.zeros(signs.shape, bool)
        self.changed |= signs * self.first < 0
        return bool(np.all(self.changed))


def _inner_product(grad, before, after) -> float:
    """``<grad, after - before>``."""
    return float(sum(np.vdot(np.asarray(g), np.asarray(a) - np.asarray(b))
                     for g, b, a in zip(jax.tree_util.tree_leaves(grad),
                                        jax.tree_util.tree_leaves(before),
                                        jax.tree_util.tree_leaves(after),
                                        strict=True)))


def _largest_change(before, after):
    return max((float(np.max(np.abs(np.asarray(b) - np.asarray(a)), initial=0.0))
                for a, b in zip(jax.tree_util.tree_leaves(before),
                                jax.tree_util.tree_leaves(after), strict=True)),
               default=0.0)


def _to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def minimize_hyperparameters(
    problem,
    hparams: PyTree,
    inner_data: tuple,
    outer_data: tuple,
    *,
    method=None,
    optimizer: optax.GradientTransformation | None = None,
    num_steps: int = 50,
    tol_schedule: Callable[[int], float] | None = None,
    grad_tol: float = 0.0,
    step_tol: float = 0.0,
    gain_tol: float = 0.0,
    patience: int | None = None,
    min_delta: float = 1e-4,
    project: Callable[[PyTree], PyTree] | None = None,
    callback: Callable[[int, PyTree, Any], bool | None] | None = None,
    fixed: dict | None = None,
    opt_state: PyTree = None,
    keep: str = "best",
) -> OuterResult:
    """Minimize the outer objective over the hyperparameters by hypergradients.

    Parameters
    ----------
    problem : BilevelProblem
        The bilevel problem.
    hparams : PyTree
        Initial hyperparameters (in the unconstrained space the losses expect).
    inner_data, outer_data : tuple
        Extra arguments of the inner and the outer loss.
    method : HypergradientMethod, default=Implicit()
        The hypergradient method, e.g. ``Reverse(checkpoint=True)``,
        ``Batched(Implicit())`` or ``Implicit(inner_solver="scipy")`` (not
        traceable: the loop then calls it eagerly).
    optimizer : optax.GradientTransformation, default=optax.adam(0.1)
        The outer optimizer. Reuse the same object across calls to reuse the
        compiled step.
    num_steps : int, default=50
        Outer-step budget.
    tol_schedule : callable, optional
        ``tol_schedule(k)``: tolerance passed to the method at outer step ``k``
        (see :func:`~skfarho.core.tolerance_schedule`); None: the method's own.
    grad_tol : float, default=0.0
        Stop when the hypergradient norm falls below it.
    step_tol : float, default=0.0
        Stop when no hyperparameter would move by more than ``step_tol`` (the
        largest absolute entry of the optimizer's update), as SciPy's ``xtol``.
    gain_tol : float, default=0.0
        Once every hypergradient entry has changed sign (each hyperparameter's
        optimum is bracketed), stop when the step's first-order predicted
        decrease of the outer objective, ``-<hypergradient, step>``, is below
        ``gain_tol * |objective|``: a step not expected to gain what ``min_delta``
        counts as an improvement.
    patience : int, optional
        Stop after ``patience`` steps without a relative improvement of at least
        ``min_delta`` of the best outer objective.
    min_delta : float, default=1e-4
        See ``patience``.
    project : callable, optional
        Applied to the hyperparameters after every update (a projection onto
        bounds, for instance). Must be hashable (a module-level function).
    callback : callable, optional
        ``callback(step, hparams, result)`` after each step; returning True stops.
    fixed : dict, optional
        Hyperparameters the losses read but the loop does not learn, merged into
        the ``hparams`` dict the problem's functions see (see :func:`bind_fixed`).
    opt_state : PyTree, optional
        Initial state of ``optimizer``; default ``optimizer.init(hparams)``. With
        ``optax.inject_hyperparams`` its step size lives here, so changing it
        does not recompile.
    keep : {"best", "last"}, default="best"
        Return the hyperparameters with the lowest outer objective seen, or the
        last ones. Use "last" with the online methods, whose outer objective
        also falls because the inner run advances.

    Returns
    -------
    OuterResult
        The best hyperparameters, history and stopping information.

    Raises
    ------
    DivergenceError
        When the inner parameters, the outer value or the hypergradient are not
        finite; the message names the likely cause and the knob to turn.
    """
    if keep not in ("best", "last"):
        raise ValueError(f'keep must be "best" or "last", got {keep!r}.')
    method = Implicit() if method is None else method
    optimizer = _default_optimizer() if optimizer is None else optimizer
    step_fn = compiled_outer_step(problem, method, optimizer, project)
    hparams = jax.tree_util.tree_map(_as_array, hparams)
    opt_state = optimizer.init(hparams) if opt_state is None else opt_state
    fixed = {} if fixed is None else fixed
    if not method.traceable:  # compiles while the first step waits for its own
        compile_when_idle(compiled_update(optimizer, project),
                          (hparams, opt_state, hparams))
    warm_start = method.init_warm_start(problem, hparams, inner_data, fixed)
    history = {"value": [], "grad_norm": [], "time": [], "hparams": []}
    best = (np.inf, hparams, None)
    since_best, converged, start = 0, False, time.perf_counter()
    bracketed = _SignChanges()
    for k in range(num_steps):
        tol_arg = None if tol_schedule is None else np.asarray(tol_schedule(k))
        new_hparams, opt_state, result, grad_norm = step_fn(
            hparams, opt_state, warm_start, tol_arg, inner_data, outer_data, fixed
        )
        value, grad_norm = float(result.value), float(grad_norm)
        if not bool(result.finite) or not np.isfinite(grad_norm):
            raise DivergenceError(
                f"Non-finite outer objective or hypergradient at outer step {k}: "
                f"{method.divergence_hint}.")
        history["value"].append(value)
        history["grad_norm"].append(grad_norm)
        history["time"].append(time.perf_counter() - start)
        history["hparams"].append(_to_numpy(hparams))
        if value < best[0] - min_delta * abs(best[0]) or best[2] is None:
            best, since_best = (value, hparams, result.params), 0
        else:
            since_best += 1
        stop = callback is not None and bool(callback(k, hparams, result))
        if step_tol > 0 and _largest_change(hparams, new_hparams) <= step_tol:
            stop = True
        if (gain_tol > 0 and bracketed(result.grad)
                and -_inner_product(result.grad, hparams, new_hparams)
                < gain_tol * abs(value)):
            stop = True
        if stop or grad_norm <= grad_tol or (patience and since_best >= patience):
            converged = True
            break
        hparams, warm_start = new_hparams, result.warm_start
    history = {key: (np.asarray(val) if key != "hparams" else val)
               for key, val in history.items()}
    if keep == "last":
        best = (value, hparams, result.params)
    return OuterResult(best[1], best[2], history, len(history["value"]), converged)


def _as_array(value):
    """``value`` as a JAX array of its own dtype (a NumPy array is only put on
    the device: ``jnp.asarray`` would compile a small program for it)."""
    if isinstance(value, np.ndarray) and value.dtype == jax.dtypes.canonicalize_dtype(
            value.dtype):
        return jax.device_put(value)
    return jnp.asarray(value, jnp.asarray(value).dtype)


@functools.cache
def _default_optimizer():
    return optax.adam(0.1)


def _check_method(method):
    if not isinstance(method, HypergradientMethod):
        raise TypeError(
            "method must be a hypergradient method (see "
            "skfarho.core.HypergradientMethod: __call__, init_warm_start, "
            f"solve_inner, traceable, divergence_hint), got {method!r}.")
