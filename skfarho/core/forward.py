"""Forward-mode hypergradients: tangents carried along the inner dynamics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from skfarho.core.problem import HypergradResult, bind_fixed, make_result
from skfarho.core.unroll import UnrolledMethod, unrolled_objective

PyTree = Any


@dataclass(frozen=True)
class Forward(UnrolledMethod):
    """Forward-mode hypergradient (FAR-HO's ``ForwardHG``).

    Pushes one tangent per scalar hyperparameter through the ``T`` inner steps
    with :func:`jax.jvp` (all of them at once under :func:`jax.vmap`). Memory does
    not grow with ``T``; time and memory grow with the number of scalar
    hyperparameters, so use it for a handful of them (a learning rate, a
    momentum, one L2 strength) and long inner runs.

    Parameters
    ----------
    chunk_size : int, optional
        Push at most this many tangents at a time (:func:`jax.lax.map` over
        chunks) to bound memory for many hyperparameters. ``None``: all at once.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem, Forward
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h: 0.5 * (w - h) ** 2,
    ...     outer_loss=lambda w, h: 0.5 * (w - 1.0) ** 2,
    ...     init_params=lambda h: 0.0,
    ...     num_steps=200,
    ... )
    >>> round(float(Forward()(problem, 3.0, (), ()).grad), 4)
    2.0
    """

    chunk_size: int | None = None

    def __call__(
        self,
        problem,
        hparams: PyTree,
        inner_data: tuple,
        outer_data: tuple,
        warm_start: PyTree = None,
        tol=None,
        fixed: dict | None = None,
    ) -> HypergradResult:
        """Outer value and hypergradient; ``warm_start`` and ``tol`` are unused."""
        problem = bind_fixed(problem, fixed)
        flat, unravel = ravel_pytree(hparams)

        def objective(flat_h):
            return unrolled_objective(problem, unravel(flat_h), inner_data, outer_data)

        def directional(tangent):
            return jax.jvp(objective, (flat,), (tangent,), has_aux=True)

        basis = jnp.eye(flat.size, dtype=flat.dtype)
        if self.chunk_size is None or self.chunk_size >= flat.size:
            values, grads, params = jax.vmap(directional)(basis)
        else:
            values, grads, params = jax.lax.map(
                directional, basis, batch_size=self.chunk_size
            )
        params = jax.tree_util.tree_map(lambda leaf: leaf[0], params)
        return make_result(values[0], unravel(grads), params)
