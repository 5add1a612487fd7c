"""Many inner problems, one set of hyperparameters: K-fold objectives, meta-learning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from skfarho.core.problem import HypergradResult

PyTree = Any


@dataclass(frozen=True)
class Batched:
    """Average a hypergradient method over a batch of inner problems with ``vmap``.

    Every array in ``inner_data`` and ``outer_data`` carries a leading batch axis
    (one entry per fold or per task); the hyperparameters are shared. The outer
    objective is the mean of the per-problem objectives, and so is its
    hypergradient. Warm starts are kept per problem.

    Parameters
    ----------
    method : HypergradientMethod
        Any hypergradient method (:class:`Reverse`, :class:`Forward`,
        :class:`Implicit`, ...). A traceable one is ``vmap``-ped. A host-side
        method with a ``call_batch`` member (the optional extension of
        :class:`~skfarho.core.HypergradientMethod`; ``Implicit(inner_solver=
        "scipy")``'s solves the whole batch in one SciPy run) gets batches of
        more than one problem; other host-side methods run in a Python loop
        over the batch. Results are NumPy then.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import Batched, BilevelProblem, Reverse
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h, t: 0.5 * (w - h * t) ** 2,
    ...     outer_loss=lambda w, h, t: 0.5 * (w - t) ** 2,
    ...     init_params=lambda h: 0.0,
    ...     num_steps=200,
    ... )
    >>> targets = (jnp.array([1.0, 2.0]),)
    >>> result = Batched(Reverse())(problem, 2.0, targets, targets)
    >>> round(float(result.grad), 3)  # mean over tasks of (h - 1) t^2
    2.5
    """

    method: Any

    @property
    def traceable(self) -> bool:
        """The wrapped method's: True ``vmap``-s the batch, False loops in Python."""
        return self.method.traceable

    @property
    def divergence_hint(self) -> str:
        """The wrapped method's."""
        return self.method.divergence_hint

    def _solves_batch_on_host(self, inner_data) -> bool:
        """A host-side method that solves batches itself, on more than one."""
        leaves = jax.tree_util.tree_leaves(inner_data)
        call_batch = getattr(self.method, "call_batch", None)
        return (not self.traceable and callable(call_batch) and bool(leaves)
                and len(leaves[0]) > 1)

    def _map(self, fun, *batched):
        if self.traceable:
            return jax.vmap(fun)(*batched)
        size = len(jax.tree_util.tree_leaves(batched[0])[0])
        results = [fun(*jax.tree_util.tree_map(lambda leaf, i=i: np.asarray(leaf)[i],
                                               batched))
                   for i in range(size)]
        return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *results)

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
        """Mean outer value and hypergradient over the batch."""

        def one(inner, outer, warm):
            return self.method(problem, hparams, inner, outer, warm, tol, fixed)

        if self._solves_batch_on_host(inner_data):
            results = self.method.call_batch(problem, hparams, inner_data,
                                             outer_data, warm_start, tol, fixed)
        else:
            results = self._map(one, inner_data, outer_data, warm_start)
        xp = jnp if self.traceable else np
        mean = jax.tree_util.tree_map(lambda leaf: xp.mean(leaf, axis=0), results.grad)
        return HypergradResult(
            xp.mean(results.value),
            mean,
            results.params,
            results.warm_start,
            xp.all(results.finite),
        )

    def init_warm_start(self, problem, hparams, inner_data, fixed=None):
        """One warm start per problem of the batch (leading batch axis)."""

        def one(inner):
            return self.method.init_warm_start(problem, hparams, inner, fixed)

        return self._map(one, inner_data)

    def solve_inner(self, problem, hparams, inner_data, warm_start=None, tol=None,
                    fixed=None):
        """The inner solution of every problem of the batch (leading batch axis)."""

        def one(inner, warm):
            return self.method.solve_inner(problem, hparams, inner, warm, tol, fixed)

        return self._map(one, inner_data, warm_start)
