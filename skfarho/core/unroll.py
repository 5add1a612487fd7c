"""The outer objective as a function of the hyperparameters, through T inner steps.

Shared by :class:`~skfarho.core.Reverse` and :class:`~skfarho.core.Forward`:
both differentiate :func:`unrolled_objective`, in reverse and forward mode.
:class:`UnrolledMethod` holds what they and the online methods share.
"""

from __future__ import annotations

from typing import Any

import jax

from skfarho.core.dynamics import init_state, run
from skfarho.core.problem import bind_fixed

PyTree = Any

DIVERGENCE_HINT = ("the unrolled inner dynamics diverged: lower the inner learning "
                   "rate (or bound a learned one), or lower the outer learning rate")


def unrolled_params(
    problem,
    hparams: PyTree,
    inner_data: tuple,
    truncate: int | None = None,
    checkpoint: bool = False,
) -> PyTree:
    """``w_T(hparams)``: the parameters after ``problem.num_steps`` inner steps.

    Parameters
    ----------
    problem : BilevelProblem
        The problem.
    hparams : PyTree
        The hyperparameters.
    inner_data : tuple
        Extra arguments of ``problem.inner_loss``.
    truncate : int, optional
        Only the last ``truncate`` steps carry derivatives: the first
        ``T - truncate`` run under :func:`jax.lax.stop_gradient` (truncated
        back-propagation, Shaban et al. 2019). ``None`` or ``T`` means all steps.
    checkpoint : bool, default=False
        Rematerialize the differentiated steps (see :func:`skfarho.core.dynamics.run`).
    """
    num_steps = problem.num_steps
    differentiated = num_steps if truncate is None else min(int(truncate), num_steps)
    if differentiated < 1 and num_steps > 0:
        raise ValueError(f"truncate must be >= 1, got {truncate}.")
    state = init_state(problem, hparams)
    if differentiated < num_steps:
        state = run(problem, hparams, inner_data, state, num_steps - differentiated)
        state = jax.lax.stop_gradient(state)
    state = run(problem, hparams, inner_data, state, differentiated, checkpoint)
    return state.params


def unrolled_objective(
    problem,
    hparams: PyTree,
    inner_data: tuple,
    outer_data: tuple,
    truncate: int | None = None,
    checkpoint: bool = False,
):
    """``(E(w_T(hparams), hparams), w_T)``: the outer loss and the final parameters."""
    params = unrolled_params(problem, hparams, inner_data, truncate, checkpoint)
    return problem.outer_loss(params, hparams, *outer_data), params


class UnrolledMethod:
    """The members the unrolled and online methods share.

    They are traceable, diverge through the inner dynamics, and their inner
    parameters are ``w_T(hparams)`` after ``problem.num_steps`` steps from
    ``init_params`` (no warm start).
    """

    traceable = True
    divergence_hint = DIVERGENCE_HINT

    def init_warm_start(self, problem, hparams, inner_data, fixed=None):
        """Unrolled methods restart from ``init_params``: no warm start."""
        return None

    def solve_inner(self, problem, hparams, inner_data, warm_start=None, tol=None,
                    fixed=None):
        """The inner parameters this method differentiates: ``w_T(hparams)``."""
        return unrolled_params(bind_fixed(problem, fixed), hparams, inner_data)
