"""The interface every hypergradient method follows.

A method is a hashable value (a frozen dataclass) passed to
:func:`~skfarho.core.minimize_hyperparameters`, :class:`~skfarho.core.Batched`,
or the estimators, as optimistix passes an adjoint and optax an optimizer. It is
typed structurally, like optax's ``GradientTransformation``: any object with the
members of :class:`HypergradientMethod` is one, no base class needed.

A host-side method (``traceable`` False) may also define ``call_batch``, with
``__call__``'s signature, returning the per-problem results (not averaged) of a
batch of problems stacked along a leading axis, to solve them jointly:
:class:`~skfarho.core.Batched` then calls it instead of looping over the batch
(``Implicit(inner_solver="scipy")`` runs one SciPy solve for all).

To add a method, write a frozen dataclass with these five members (see
:class:`~skfarho.core.Reverse` for a short one) and check it against central
finite differences in float64 (``tests/test_core_hypergradients.py``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from skfarho.core.problem import HypergradResult

PyTree = Any


@runtime_checkable
class HypergradientMethod(Protocol):
    """What a hypergradient method is: three functions and two attributes.

    Every function takes the bilevel problem first and ``fixed`` last: a dict of
    hyperparameters the problem's functions read (merged into ``hparams``, see
    :func:`~skfarho.core.problem.bind_fixed`) but that get no hypergradient.
    Passing them separately from ``hparams`` keeps them traced arguments, so new
    values never recompile.

    Attributes
    ----------
    traceable : bool
        True when the three functions may run under :func:`jax.jit` and
        :func:`jax.vmap` (the outer step is then one compiled program); False for a
        host-side method (SciPy solvers driving jitted pieces), which callers run
        eagerly, looping in Python over a batch.
    divergence_hint : str
        The likely cause and the knob to turn when the method's results are not
        finite; :func:`~skfarho.core.minimize_hyperparameters` puts it in its
        :class:`~skfarho.core.DivergenceError`.

    Examples
    --------
    >>> from skfarho.core import (RTHO, TRHO, Batched, Forward, HypergradientMethod,
    ...                           Implicit, Reverse)
    >>> methods = [Reverse(), Forward(), Implicit(), Implicit(inner_solver="scipy"),
    ...            RTHO(), TRHO(), Batched(Reverse())]
    >>> all(isinstance(method, HypergradientMethod) for method in methods)
    True
    >>> [method.traceable for method in methods[2:4]]
    [True, False]
    """

    @property
    def traceable(self) -> bool:
        """Whether the method may be ``jit``-ed and ``vmap``-ped."""

    @property
    def divergence_hint(self) -> str:
        """The cause and the knob a :class:`~skfarho.core.DivergenceError` names."""

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
        """Outer value and hypergradient at ``hparams``.

        ``inner_data`` and ``outer_data`` are the extra arguments of the inner and
        the outer loss; ``warm_start`` is ``init_warm_start``'s value or the
        previous result's ``warm_start``; ``tol`` the inner tolerance (None: the
        method's own; unrolled methods ignore both).
        """

    def init_warm_start(
        self, problem, hparams: PyTree, inner_data: tuple, fixed: dict | None = None
    ) -> PyTree:
        """The warm start of the first call (None for the unrolled methods)."""

    def solve_inner(
        self,
        problem,
        hparams: PyTree,
        inner_data: tuple,
        warm_start: PyTree = None,
        tol=None,
        fixed: dict | None = None,
    ) -> PyTree:
        """The inner parameters the method differentiates, without the gradient.

        What a refit on all rows calls: ``w_T(hparams)`` for the unrolled and
        online methods, the inner minimizer for the implicit one.
        """
