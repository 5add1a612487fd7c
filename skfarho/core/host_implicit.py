"""``HostImplicit``: the implicit method with host-side solvers, by its former name.

The host-side solve is now a choice of inner solver of
:class:`~skfarho.core.Implicit`: ``Implicit(inner_solver="scipy")`` runs SciPy's
L-BFGS-B on the host over a small jitted value-and-gradient program, then one
jitted program for conjugate gradient and the rest, under the same
implicit-differentiation rule as the traced ``Implicit()``. :func:`HostImplicit`
builds it from the arguments the former class took, so code written for it keeps
working.
"""

from __future__ import annotations

from skfarho.core.implicit import Implicit, host_programs
from skfarho.core.linear_solve import CG

__all__ = ["HostImplicit", "host_programs"]


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
