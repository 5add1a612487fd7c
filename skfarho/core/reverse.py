"""Reverse-mode hypergradients: backpropagation through the unrolled inner steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax

from skfarho.core.problem import HypergradResult, bind_fixed, make_result
from skfarho.core.unroll import UnrolledMethod, unrolled_objective

PyTree = Any


@dataclass(frozen=True)
class Reverse(UnrolledMethod):
    """Reverse-mode hypergradient (FAR-HO's ``ReverseHG``).

    Backpropagates through the ``lax.scan`` of the ``T`` inner steps. Time is
    about two to three training runs, whatever the number of hyperparameters;
    memory grows linearly with ``T`` unless ``checkpoint=True`` (``O(sqrt(T))``).

    Parameters
    ----------
    truncate : int, optional
        Differentiate only the last ``truncate`` steps (``K`` in Shaban et al.,
        2019): cheaper and biased; the initial parameters get no hypergradient.
    checkpoint : bool, default=False
        Store about ``sqrt(T)`` inner states and recompute the rest on the way
        back (:func:`jax.checkpoint`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem, Reverse
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h: 0.5 * (w - h) ** 2,
    ...     outer_loss=lambda w, h: 0.5 * (w - 1.0) ** 2,
    ...     init_params=lambda h: 0.0,
    ...     num_steps=200,
    ... )
    >>> round(float(Reverse()(problem, 3.0, (), ()).grad), 4)  # d/dh 0.5 (h-1)^2
    2.0
    """

    truncate: int | None = None
    checkpoint: bool = False

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

        def objective(h):
            return unrolled_objective(
                problem, h, inner_data, outer_data, self.truncate, self.checkpoint
            )

        (value, params), grad = jax.value_and_grad(objective, has_aux=True)(hparams)
        return make_result(value, grad, params)
