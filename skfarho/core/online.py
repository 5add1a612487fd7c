"""Online hypergradients: update the hyperparameters while the inner run goes on.

Both methods keep the inner state (parameters and optimizer state) across outer
steps as their ``warm_start``, advance it by ``hyper_interval`` inner steps per
call and return a hypergradient of the outer loss at the new state, so that
:func:`~skfarho.core.minimize_hyperparameters` updates the hyperparameters every
``hyper_interval`` inner steps instead of after a whole training run:

- :class:`RTHO` (real-time HO, Franceschi et al. 2017) also carries the forward
  tangents ``Z_t = dw_t / d(hparams)`` across calls, so its hypergradient
  accounts for the whole trajectory so far (exact while the hyperparameters do
  not change, an approximation after they do).
- :class:`TRHO` (truncated-reverse online) backpropagates through the current
  ``hyper_interval`` steps only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from skfarho.core.dynamics import InnerState, init_state, run
from skfarho.core.problem import HypergradResult, bind_fixed, make_result
from skfarho.core.unroll import UnrolledMethod

PyTree = Any


class OnlineState(NamedTuple):
    """The running inner state and, for RTHO, its tangents (one per scalar
    hyperparameter, stacked on a leading axis)."""

    inner: InnerState
    tangents: PyTree


def _inexact(leaf) -> bool:
    return jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)


def _to_jvp_tangent(primal: PyTree, carried: PyTree) -> PyTree:
    """Carried tangents, with float0 zeros for integer leaves (optax counters)."""
    return jax.tree_util.tree_map(
        lambda p, c: c if _inexact(p) else np.zeros(np.shape(p), jax.dtypes.float0),
        primal, carried)


def _from_jvp_tangent(primal: PyTree, tangent: PyTree) -> PyTree:
    """Tangents to carry: integer leaves get a float placeholder of their shape."""
    return jax.tree_util.tree_map(
        lambda p, t: t if _inexact(p) else jnp.zeros(np.shape(p)), primal, tangent)


def _first(tree: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda leaf: leaf[0], tree)


class _Online(UnrolledMethod):
    """What both online methods share: the carried state and the final fit.

    ``solve_inner`` (from :class:`~skfarho.core.unroll.UnrolledMethod`) is a fresh
    run of ``problem.num_steps`` steps: the model to keep, as the carried state
    ran with changing hyperparameters.
    """

    hyper_interval: int

    def _state(self, problem, hparams, inner_data, warm_start):
        if warm_start is None:
            return self.init_warm_start(problem, hparams, inner_data)
        return warm_start


@dataclass(frozen=True)
class RTHO(_Online):
    """Real-time hyperparameter optimization (forward mode, online).

    Time per call: ``hyper_interval`` inner steps times the number of scalar
    hyperparameters (tangents are pushed with :func:`jax.jvp` under
    :func:`jax.vmap`); memory: the tangents, independent of the run length.

    Parameters
    ----------
    hyper_interval : int, default=10
        Inner steps between two hyperparameter updates.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem, RTHO
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h: 0.5 * (w - h) ** 2,
    ...     outer_loss=lambda w, h: 0.5 * (w - 1.0) ** 2,
    ...     init_params=lambda h: 0.0,
    ... )
    >>> method = RTHO(hyper_interval=100)
    >>> state = method.init_warm_start(problem, 3.0, ())
    >>> result = method(problem, 3.0, (), (), state)
    >>> round(float(result.grad), 3)  # after 100 steps w ~ h: d/dh 0.5 (h-1)^2
    2.0
    """

    hyper_interval: int = 10

    def init_warm_start(self, problem, hparams, inner_data, fixed=None):
        """The initial inner state and its tangents ``d state_0 / d hparams``."""
        problem = bind_fixed(problem, fixed)
        flat, unravel = ravel_pytree(hparams)

        def initial(flat_h):
            return init_state(problem, unravel(flat_h))

        def directional(tangent):
            return jax.jvp(initial, (flat,), (tangent,))

        basis = jnp.eye(flat.size, dtype=flat.dtype)
        states, tangents = jax.vmap(directional)(basis)
        state = _first(states)
        return OnlineState(state, jax.vmap(_from_jvp_tangent, (None, 0))(state,
                                                                          tangents))

    def __call__(self, problem, hparams: PyTree, inner_data: tuple,
                 outer_data: tuple, warm_start: OnlineState | None = None,
                 tol=None, fixed: dict | None = None) -> HypergradResult:
        """Advance ``hyper_interval`` steps; hypergradient through the whole run."""
        problem = bind_fixed(problem, fixed)
        state = self._state(problem, hparams, inner_data, warm_start)
        flat, unravel = ravel_pytree(hparams)

        def chunk(inner_state, flat_h):
            h = unravel(flat_h)
            new = run(problem, h, inner_data, inner_state, self.hyper_interval)
            return new, problem.outer_loss(new.params, h, *outer_data)

        def directional(carried, direction):
            tangent = _to_jvp_tangent(state.inner, carried)
            (new, value), (d_new, d_value) = jax.jvp(
                chunk, (state.inner, flat), (tangent, direction))
            return new, value, _from_jvp_tangent(new, d_new), d_value

        basis = jnp.eye(flat.size, dtype=flat.dtype)
        new, values, tangents, grads = jax.vmap(directional)(state.tangents, basis)
        new = _first(new)
        return make_result(values[0], unravel(grads), new.params,
                           OnlineState(new, tangents))


@dataclass(frozen=True)
class TRHO(_Online):
    """Truncated-reverse online hyperparameter optimization.

    Each call runs ``hyper_interval`` inner steps from the carried state and
    backpropagates through them only: time about two chunks, memory one chunk,
    whatever the number of hyperparameters. Biased (earlier steps are ignored).

    Parameters
    ----------
    hyper_interval : int, default=10
        Inner steps between two hyperparameter updates (the truncation length).
    checkpoint : bool, default=False
        Rematerialize the chunk's steps (see :func:`skfarho.core.dynamics.run`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem, TRHO
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h: 0.5 * (w - h) ** 2,
    ...     outer_loss=lambda w, h: 0.5 * (w - 1.0) ** 2,
    ...     init_params=lambda h: 0.0,
    ... )
    >>> result = TRHO(hyper_interval=100)(problem, 3.0, (), ())
    >>> round(float(result.grad), 3)
    2.0
    """

    hyper_interval: int = 10
    checkpoint: bool = False

    def init_warm_start(self, problem, hparams, inner_data, fixed=None):
        """The initial inner state (no tangents)."""
        return OnlineState(init_state(bind_fixed(problem, fixed), hparams), None)

    def __call__(self, problem, hparams: PyTree, inner_data: tuple,
                 outer_data: tuple, warm_start: OnlineState | None = None,
                 tol=None, fixed: dict | None = None) -> HypergradResult:
        """Advance ``hyper_interval`` steps; backpropagate through them only."""
        problem = bind_fixed(problem, fixed)
        state = jax.lax.stop_gradient(
            self._state(problem, hparams, inner_data, warm_start).inner)

        def objective(h):
            new = run(problem, h, inner_data, state, self.hyper_interval,
                      self.checkpoint)
            return problem.outer_loss(new.params, h, *outer_data), new

        (value, new), grad = jax.value_and_grad(objective, has_aux=True)(hparams)
        return make_result(value, grad, new.params, OnlineState(new, None))
