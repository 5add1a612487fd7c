"""The numbers behind ``fit``, free of ``self``: learn, then refit on all rows.

The estimators validate their input and build the pieces (problem, objective,
data, method, optimizer, initial hyperparameters); these functions do the rest,
as scikit-learn's ``Ridge.fit`` hands over to ``_ridge_regression``.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skfarho._data import StackedFolds
from skfarho._hyperparameters import weights_for_refit
from skfarho._objective import trained_rows
from skfarho.core import DivergenceError, minimize_hyperparameters
from skfarho.core.compile_ahead import compile_when_idle, work_of
from skfarho.core.host_implicit import host_programs, host_solve_programs
from skfarho.core.outer import compiled_solve_inner
from skfarho.core.sharding import current_mesh, shard_rows


class LearnedModel(NamedTuple):
    """What :func:`learn_hyperparameters` returns (NumPy arrays).

    Attributes
    ----------
    params : dict
        The model fitted with the learned hyperparameters.
    hparams : dict
        Learned and fixed hyperparameters, encoded.
    history : dict
        The outer loop's history (see :class:`~skfarho.core.OuterResult`).
    converged : bool
        False when the outer loop ran out of steps.
    trained : ndarray of bool
        Rows some inner problem trained on.
    """

    params: dict
    hparams: dict
    history: dict
    converged: bool
    trained: np.ndarray


def learn_hyperparameters(problem, objective, data, method, optimizer, learned,
                          fixed, *, splits, refit=True, inner_tol=None, hint="",
                          **loop_options) -> LearnedModel:
    """Learn ``learned`` on ``objective``'s folds of ``data``, then refit.

    Parameters
    ----------
    problem : BilevelProblem
        The model's bilevel problem (outer loss from ``objective``).
    objective : object
        See :mod:`skfarho._objective`.
    data : FitData
        The rows of the fit.
    method : HypergradientMethod
        Batched over folds.
    optimizer : optax.GradientTransformation
        The outer optimizer.
    learned, fixed : dict
        Encoded initial hyperparameters (see :mod:`skfarho._hyperparameters`).
    splits : list of (train, outer) index arrays
        From ``objective.splits``.
    refit : bool
        Refit on all rows (from the folds' mean solution) or keep that mean.
    inner_tol : float, optional
        Tolerance of the refit's inner solve.
    hint : str
        Ends a warning that the refit did not converge (see :func:`solve`).
    **loop_options
        Passed to :func:`~skfarho.core.minimize_hyperparameters`.
    """
    folds = data.folds(splits, outer_is_inner=objective.reads_training_rows)
    folds = placed_folds(folds, method)
    if refit and not method.traceable:  # while the first step waits to compile
        rows = tuple(part[0] for part in data.all_rows())
        for program in host_solve_programs(method.method, problem, fixed["w0"], rows):
            compile_when_idle(program, (fixed["w0"], learned, fixed, rows))
    result = minimize_hyperparameters(problem, learned, folds.inner, folds.outer,
                                      method=method, optimizer=optimizer,
                                      fixed=fixed, **loop_options)
    trained = trained_rows(splits, data.n_rows)
    hparams = weights_for_refit(_numpy(result.hparams), trained)
    start = jax.tree_util.tree_map(lambda p: np.asarray(np.mean(p, axis=0)),
                                   result.params)
    if refit:
        params = solve(problem, method, hparams, {**fixed, "w0": start}, data,
                       inner_tol, hint)
    else:
        params = checked(start)
    return LearnedModel(params, {**hparams, **fixed}, result.history,
                        result.converged, trained)


def solve(problem, method, hparams, fixed, data, tol=None, hint=""):
    """The model fitted on all rows of ``data`` with the given hyperparameters,
    from ``fixed["w0"]`` (``method.solve_inner``; traced on accelerators).

    Raises a ``DivergenceError`` when the training loss ended non-finite or
    clearly above its starting value, and warns (:class:`InnerConvergenceWarning`) when
    the final gradient norm shows the inner problem was not solved: below
    ``tol`` (times 10) for the implicit method, below a tenth of the starting
    gradient norm for the unrolled dynamics; ``hint`` (the knobs to turn) ends
    the warning.
    """
    rows = placed(data.all_rows(), method)
    params = compiled_solve_inner(problem, method)(hparams, rows, fixed, None, tol)
    params = jax.tree_util.tree_map(lambda p: p[0], params)
    one = tuple(part[0] for part in rows)
    # the implicit method's own (already compiled) value-and-gradient program
    value_and_grad = _value_and_grad(problem, fixed["w0"], one)
    start_loss, start_norm = _loss_and_norm(value_and_grad(fixed["w0"], hparams,
                                                           fixed, one))
    loss, norm = _loss_and_norm(value_and_grad(params, hparams, fixed, one))
    if not np.isfinite(loss) or loss > start_loss + 0.01 * abs(start_loss) + 1e-8:
        raise DivergenceError(
            f"The inner dynamics diverged: the training loss went from "
            f"{start_loss:.4g} to {loss:.4g}")
    limit = 10.0 * tol if tol is not None else 0.1 * float(start_norm)
    if norm > limit:
        warnings.warn(InnerConvergenceWarning(
            f"The inner problem did not converge: the training loss's gradient "
            f"norm is {norm:.3g} at the end (limit {limit:.3g}){hint}"),
            stacklevel=2)
    return checked(params)


def _value_and_grad(problem, params, rows):
    """The host implicit method's value-and-gradient program for one problem
    with ``params`` on ``rows`` (its compiler options depend on their sizes)."""
    return host_programs(problem, work=work_of(params, rows))["inner_value_and_grad"]


def placed(parts, method):
    """Stacked rows ``parts`` (``(X, y, mask, ...)``, a leading fold axis), split
    across the devices of the enclosing :func:`~skfarho.core.sharding.data_parallel`
    block for a traceable ``method``; unchanged (host arrays) otherwise.

    Rows are padded with zeros (mask 0: weight 0) to a multiple of the number
    of devices; the padded length depends on the shape bucket and the device
    count only, so fits of one bucket share one compiled program. Sparse
    ``X`` (a :class:`~skfarho.core.sparse.SparseMatrix`) stays on one device.
    """
    mesh = _mesh_for(method)
    if mesh is None:
        return parts
    if not all(isinstance(part, np.ndarray) for part in parts):
        warnings.warn("data_parallel: sparse rows are not sharded yet; this fit "
                      "uses one device.", RuntimeWarning, stacklevel=3)
        return parts
    return shard_rows(_pad_to_multiple(parts, mesh.size), mesh)


def placed_folds(folds: StackedFolds, method) -> StackedFolds:
    """:func:`placed` on inner and outer data (placed once when they are one)."""
    inner = placed(folds.inner, method)
    outer = inner if folds.outer is folds.inner else placed(folds.outer, method)
    return StackedFolds(inner, outer)


def _mesh_for(method):
    mesh = current_mesh()
    if mesh is None or mesh.size == 1:
        return None
    if not method.traceable:
        warnings.warn(
            f"data_parallel: {method!r} runs on the host, so this fit uses one "
            "device; a traced method (hypergradient='reverse', 'forward', "
            "'rtho', 'trho', or 'implicit' on an accelerator) is sharded.",
            RuntimeWarning, stacklevel=4)
        return None
    return mesh


def _pad_to_multiple(parts, multiple):
    def pad(part):
        part = np.asarray(part)
        extra = -part.shape[1] % multiple if part.ndim >= 2 else 0
        if not extra:
            return part
        widths = [(0, 0)] * part.ndim
        widths[1] = (0, extra)
        return np.pad(part, widths)

    return tuple(pad(part) for part in parts)


class InnerConvergenceWarning(ConvergenceWarning):
    """The final fit's inner problem was not solved to its tolerance."""


def _loss_and_norm(value_and_grad):
    value, grad = value_and_grad
    return float(value), float(np.sqrt(sum(
        np.sum(np.square(leaf)) for leaf in jax.tree_util.tree_leaves(grad))))


def checked(params):
    """``params`` as NumPy float64, or a ``DivergenceError`` if not finite."""
    params = jax.tree_util.tree_map(lambda p: np.asarray(p, np.float64), params)
    if not all(np.all(np.isfinite(p)) for p in jax.tree_util.tree_leaves(params)):
        raise DivergenceError("The final fit produced non-finite coefficients")
    return params


def _numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)
