r"""Implicit hypergradients (HOAG, Pedregosa 2016).

At a minimizer :math:`w^*(\lambda)` of the inner loss :math:`L`, the implicit
function theorem gives

.. math::

    \nabla_\lambda E = \partial_\lambda E - (\partial^2_{\lambda w} L)\, v,
    \qquad H v = \nabla_w E, \quad H = \partial^2_{ww} L(w^*, \lambda).

The inner problem is solved to a tolerance by L-BFGS (traced, or SciPy's on the
host: :mod:`skfarho.core.inner_solve`) and the linear system by an injected solver
(:mod:`skfarho.core.linear_solve`), both warm started from the previous outer
step; the tolerance is tightened across outer steps by a schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from skfarho.core.inner_solve import lbfgs_minimize
from skfarho.core.linear_solve import CG, Cholesky
from skfarho.core.newton import newton_minimize
from skfarho.core.problem import HypergradResult, bind_fixed, make_result

PyTree = Any

DIVERGENCE_HINT = ("the implicit method's inner solve or linear system produced "
                   "non-finite values: check the data for extreme values, raise the "
                   "regularization, or lower the outer learning rate")

# the linear solver of each inner solver when none is given; "scipy" runs its own
# small program, where the plain while_loop CG (Hessian-vector product traced
# once) compiles faster than the differentiable one
_DEFAULT_LINEAR_SOLVERS = {"lbfgs": CG(), "scipy": CG(200, differentiable=False),
                           "newton": Cholesky(), "host_newton": Cholesky()}
# the inner solvers driven from the host (not traceable)
HOST_SOLVERS = ("scipy", "host_newton")


class ImplicitWarmStart(NamedTuple):
    """The previous inner solution and linear-system solution."""

    params: PyTree
    adjoint: PyTree


@dataclass(frozen=True)
class Implicit:
    """Implicit-differentiation hypergradient (HOAG; FAR-HO's ``ImplicitHG``).

    Exact at an exact inner minimum, whatever the inner optimizer; needs a
    (locally) strongly convex inner loss. Hyperparameters of the inner dynamics
    (learning rate, initialization) get a zero hypergradient.

    Parameters
    ----------
    linear_solver : callable, optional
        ``solver(matvec, b, x0, tol)``: :class:`~skfarho.core.CG`,
        :class:`~skfarho.core.Neumann` or :class:`~skfarho.core.Cholesky`.
        Default: ``CG()`` with ``inner_solver="lbfgs"``,
        ``CG(200, differentiable=False)`` with ``inner_solver="scipy"``,
        ``Cholesky()`` with ``"newton"`` and ``"host_newton"``.
    tol : float, default=1e-6
        Inner tolerance (gradient norm) and linear-system tolerance when the
        caller passes none; the outer loop passes a decreasing schedule.
    max_inner_iter : int, default=1000
        Iteration budget of the inner solver.
    linear_tol_factor : float, default=1.0
        The linear system is solved to relative residual ``linear_tol_factor *
        tol``. (The inner tolerance bounds an absolute gradient norm, the linear
        one a relative residual: one number for both, HOAG's choice, is a
        convention.) The classifiers pass 10 when they learn one scalar: on
        5-fold digits the conjugate gradient then took 35% fewer products, for
        the same outer path and test loss.
    warm_start_reduction : float, default=0.1
        Each inner solve also reduces the gradient norm to this fraction of its
        value at the warm start (down to ``tol / 1000``;
        :func:`~skfarho.core.inner_solve.stopping_threshold`). The outer loop's
        tolerances are loose early (HOAG's schedule): after a small step of the
        hyperparameters the previous solution often met the tolerance already,
        was returned unchanged, and the outer objective and hypergradient
        repeated their previous values, feeding the outer optimizer's secant
        stale numbers. With the estimators' defaults on
        ``benchmarks/bench_vs_search.py``'s splits, 0.1 against 0 (none):
        5-fold digits took 5 outer steps instead of 9 (test log-loss 0.1181
        against 0.1176, grid 0.1149), wine 7 instead of 11 (0.0078 against
        0.0095, grid 0.0106); the other five data sets the same.
    inner_solver : {"lbfgs", "scipy", "newton", "host_newton"}, default="lbfgs"
        How the inner problem is solved; the hypergradient rule is the same.
        ``"lbfgs"``: optax's L-BFGS, traced together with the linear solve, so
        the whole method can be ``jit``-ed and ``vmap``-ped (``traceable``); suits
        accelerators, but costs seconds of XLA compilation per configuration.
        ``"scipy"``: SciPy's L-BFGS-B on the host over a small jitted
        value-and-gradient program, then one jitted program for the linear
        solve and the rest (HOAG's original layout, as jaxopt's
        ``ScipyWrapper``). Not traceable: call it eagerly;
        :class:`~skfarho.core.Batched` and
        :func:`~skfarho.core.minimize_hyperparameters` loop in Python for it. Its
        programs compile in a fraction of a second each and are cached per
        problem: choose it when compilation time dominates (small and medium
        problems on CPU, a fresh process). See :mod:`skfarho.core.host_implicit`.
        ``"newton"``: damped Newton steps on the materialized Hessian
        (:func:`~skfarho.core.newton.newton_minimize`), traced like
        ``"lbfgs"``; for inner problems of a few dozen parameters, where a
        Hessian costs a few gradients and a solve takes a few iterations (one
        on a quadratic loss). ``"host_newton"``: the same Newton solve in a
        program of its own, called eagerly like ``"scipy"`` (not traceable);
        its small programs compile in a fraction of the time of a traced outer
        step.
    float32_tol : float, optional
        With ``inner_solver="scipy"``: while the tolerance of a call is at least
        this, its programs compute in float32 (the data, hyperparameters and
        parameters cast, the data once while it lives: arrays changed in place
        between calls are not seen; results returned in float64). The outer
        loop's early tolerances are far above float32's rounding, and a pass
        over the data costs less (1.4x on a 10-class model of 64 features,
        2.5x on a binary one of 500, bound by memory traffic). An inner solve
        that stops short of the tolerance in float32 is finished in float64.
        None: the precision of the inputs throughout.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from skfarho.core import BilevelProblem, Implicit
    >>> problem = BilevelProblem(
    ...     inner_loss=lambda w, h: 0.5 * jnp.sum((w - h) ** 2),
    ...     outer_loss=lambda w, h: 0.5 * jnp.sum((w - 1.0) ** 2),
    ...     init_params=lambda h: jnp.zeros(2),
    ... )
    >>> Implicit()(problem, jnp.array([3.0, 0.0]), (), ()).grad.round(4).tolist()
    [2.0, -1.0]
    >>> host = Implicit(inner_solver="scipy")
    >>> host(problem, jnp.array([3.0, 0.0]), (), ()).grad.round(4).tolist()
    [2.0, -1.0]
    """

    linear_solver: Any = None
    tol: float = 1e-6
    max_inner_iter: int = 1000
    inner_solver: str = "lbfgs"
    linear_tol_factor: float = 1.0
    warm_start_reduction: float = 0.1
    float32_tol: float | None = None

    divergence_hint = DIVERGENCE_HINT

    def __post_init__(self):
        if self.inner_solver not in _DEFAULT_LINEAR_SOLVERS:
            raise ValueError(f"inner_solver must be one of "
                             f"{sorted(_DEFAULT_LINEAR_SOLVERS)}, got "
                             f"{self.inner_solver!r}.")
        if self.float32_tol is not None and self.inner_solver != "scipy":
            raise ValueError(f"float32_tol needs inner_solver='scipy', got "
                             f"{self.inner_solver!r}.")
        if self.linear_solver is None:  # resolved, so equal methods hash equal
            object.__setattr__(self, "linear_solver",
                               _DEFAULT_LINEAR_SOLVERS[self.inner_solver])

    @property
    def traceable(self) -> bool:
        """False with the host-side inner solvers (``"scipy"``,
        ``"host_newton"``)."""
        return self.inner_solver not in HOST_SOLVERS

    def call_batch(self, problem, hparams, inner_data, outer_data, warm_start=None,
                   tol=None, fixed=None) -> HypergradResult:
        """The per-problem results on a batch (a leading axis), solved jointly on
        the host (:func:`~skfarho.core.host_implicit.host_call_batch`):
        :class:`~skfarho.core.Batched` calls it for the host-side solver."""
        if self.traceable:
            raise TypeError("call_batch is the host-side solver's; vmap a "
                            "traceable Implicit (Batched does).")
        from skfarho.core.host_implicit import host_call_batch
        return host_call_batch(self, problem, hparams, inner_data, outer_data,
                               warm_start, tol, fixed)

    def init_warm_start(self, problem, hparams, inner_data, fixed=None):
        """``init_params(hparams)`` and a zero adjoint, the structure of later ones.

        NumPy arrays with the host-side inner solver.
        """
        params = bind_fixed(problem, fixed).init_params(hparams)
        if not self.traceable:
            params = jax.tree_util.tree_map(np.asarray, params)
        zeros = jnp.zeros_like if self.traceable else np.zeros_like
        return ImplicitWarmStart(params, jax.tree_util.tree_map(zeros, params))

    def solve_inner(self, problem, hparams, inner_data, warm_start=None, tol=None,
                    fixed=None):
        """``w*(hparams)`` by the inner solver, from the warm start (or
        ``init_params``)."""
        tol = self.tol if tol is None else tol
        if warm_start is None:
            init = bind_fixed(problem, fixed).init_params(hparams)
        else:
            init = warm_start.params
        if not self.traceable:
            from skfarho.core.host_implicit import host_solve_inner
            return host_solve_inner(self, problem, hparams, inner_data, init, tol,
                                    fixed)
        bound = bind_fixed(problem, fixed)

        def objective(params):
            return bound.inner_loss(params, hparams, *inner_data)

        minimize = (newton_minimize if self.inner_solver == "newton"
                    else lbfgs_minimize)
        params, _ = minimize(objective, init, tol, self.max_inner_iter,
                             reduction=self.warm_start_reduction)
        return params

    def __call__(
        self,
        problem,
        hparams: PyTree,
        inner_data: tuple,
        outer_data: tuple,
        warm_start: ImplicitWarmStart | None = None,
        tol=None,
        fixed: dict | None = None,
    ) -> HypergradResult:
        """Outer value and hypergradient at the approximate inner minimum."""
        tol = self.tol if tol is None else tol
        if not self.traceable:
            from skfarho.core.host_implicit import host_call
            return host_call(self, problem, hparams, inner_data, outer_data,
                             warm_start, tol, fixed)
        problem = bind_fixed(problem, fixed)
        params = self.solve_inner(problem, hparams, inner_data, warm_start, tol)
        x0 = None if warm_start is None else warm_start.adjoint
        value, grad, adjoint = implicit_hypergradient(
            problem, hparams, params, inner_data, outer_data, self.linear_solver,
            x0, tol * self.linear_tol_factor)
        return make_result(value, grad, params, ImplicitWarmStart(params, adjoint))


def implicit_hypergradient(problem, hparams, params, inner_data, outer_data,
                           linear_solver=None, x0=None, tol=1e-6):
    r"""Outer value, hypergradient and adjoint at given inner parameters.

    The part of the implicit method after the inner solve, shared by every
    inner solver of :class:`Implicit`: traced together with the solve
    (``"lbfgs"``, ``"newton"``) or, for the host-side solvers (``"scipy"``,
    ``"host_newton"``), jitted on its own
    (:func:`~skfarho.core.host_implicit.host_programs`).

    Returns
    -------
    value : jax.Array
        The outer objective at ``params``.
    grad : PyTree
        :math:`\partial_\lambda E - (\partial^2_{\lambda w} L)\, v`.
    adjoint : PyTree
        :math:`v`, the solution of :math:`H v = \nabla_w E` (a warm start for
        the next call).
    """
    value, (grad_params, grad_direct) = jax.value_and_grad(
        problem.outer_loss, argnums=(0, 1)
    )(params, hparams, *outer_data)

    def inner_grad(w, h):
        return jax.grad(problem.inner_loss)(w, h, *inner_data)

    def hessian_vector(v):
        return jax.jvp(lambda w: inner_grad(w, hparams), (params,), (v,))[1]

    linear_solver = CG() if linear_solver is None else linear_solver
    adjoint = linear_solver(hessian_vector, grad_params, x0=x0, tol=tol)
    _, cross_vjp = jax.vjp(lambda h: inner_grad(params, h), hparams)
    (cross,) = cross_vjp(adjoint)
    grad = jax.tree_util.tree_map(lambda d, c: d - c, grad_direct, cross)
    return value, grad, adjoint


def tolerance_schedule(kind: str = "exponential", initial: float = 1e-3,
                       minimum: float = 1e-10):
    """HOAG's tolerance decrease across outer steps ``k = 0, 1, ...``.

    Parameters
    ----------
    kind : {"exponential", "quadratic", "cubic"}
        ``initial * 0.9**k``, ``initial / (k + 1)**2`` or ``initial / (k + 1)**3``.
    initial : float, default=1e-3
        Tolerance at the first outer step.
    minimum : float, default=1e-10
        Floor.

    Examples
    --------
    >>> schedule = tolerance_schedule("quadratic", 1e-2)
    >>> [schedule(k) for k in range(3)] == [1e-2, 1e-2 / 4, 1e-2 / 9]
    True
    """
    decrease = {
        "exponential": lambda k: 0.9**k,
        "quadratic": lambda k: 1.0 / (k + 1) ** 2,
        "cubic": lambda k: 1.0 / (k + 1) ** 3,
    }
    if kind not in decrease:
        raise ValueError(f"kind must be one of {sorted(decrease)}, got {kind!r}.")
    factor = decrease[kind]

    def schedule(step: int) -> float:
        return max(minimum, initial * factor(step))

    return schedule
