"""Newton's method on the inner problem: ``Implicit(inner_solver="newton")``
(traced) and ``"host_newton"`` (a jitted Newton system driven from the host),
against the L-BFGS solvers and JAX's Hessian; the host driver's iterations,
fallbacks and batching. Their finite-difference checks are those of every
implicit inner solver, in test_core_hypergradients.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bilevel_problems import (
    implicit_hparams,
    make_data,
    make_problem,
)

from skfarho.core import CG, Batched, Cholesky, Implicit
from skfarho.core.linear_solve import cholesky_solve
from skfarho.core.newton import host_newton_minimize, newton_minimize, newton_system

KINDS = ["ridge", "binary", "multinomial"]
SOLVERS = ["newton", "host_newton"]


def _call(method, problem, hparams, data):
    if method.traceable:
        return jax.jit(lambda h: method(problem, h, *data))(hparams)
    return method(problem, hparams, *data)


@pytest.mark.parametrize("inner_solver", SOLVERS)
@pytest.mark.parametrize("kind", KINDS)
def test_newton_solution_equals_lbfgs(kind, inner_solver, rng):
    (X, y), _ = make_data(kind, rng)
    problem = make_problem(kind)
    hparams = implicit_hparams(kind, rng)
    newton = Implicit(inner_solver=inner_solver, tol=1e-10)
    lbfgs = Implicit(CG(), tol=1e-10)
    got = newton.solve_inner(problem, hparams, (X, y))
    want = lbfgs.solve_inner(problem, hparams, (X, y))
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_batched_host_newton_equals_vmapped_traced_newton(rng):
    pairs = [make_data("multinomial", rng) for _ in range(3)]
    inner, outer = ([tuple(jnp.stack(parts) for parts in zip(*[p[side] for p in pairs],
                                                              strict=True))
                     for side in (0, 1)])
    problem = make_problem("multinomial")
    hparams = implicit_hparams("multinomial", rng)
    traced = jax.jit(lambda h: Batched(Implicit(inner_solver="newton", tol=1e-11))(
        problem, h, inner, outer))(hparams)
    host = Batched(Implicit(inner_solver="host_newton", tol=1e-11))(
        problem, hparams, inner, outer)
    assert isinstance(host.params["w"], np.ndarray) and host.params["w"].shape[0] == 3
    np.testing.assert_allclose(host.value, traced.value, rtol=1e-9)
    for a, b in zip(jax.tree_util.tree_leaves(host.grad),
                    jax.tree_util.tree_leaves(traced.grad), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-10)


def test_host_newton_solves_a_quadratic_in_one_step():
    calls = []
    matrix = np.array([[3.0, 1.0], [1.0, 2.0]])

    def system(x):
        calls.append(x.copy())
        grad = x @ matrix - 1.0
        values = 0.5 * np.sum((x @ matrix) * x, axis=1) - np.sum(x, axis=1)
        return values, grad, np.broadcast_to(matrix, (len(x), 2, 2))

    # (the Cholesky jitter leaves a residual near 1e-10 of the gradient)
    x, norm = host_newton_minimize(system, np.zeros((2, 2)), tol=1e-8)
    np.testing.assert_allclose(x, np.tile(np.linalg.solve(matrix, np.ones(2)),
                                          (2, 1)), rtol=1e-9)
    assert len(calls) == 2 and np.all(norm < 1e-8)  # the start, one step


def test_host_newton_descends_where_the_hessian_is_indefinite():
    """f(x) = x^4 - x^2 from x = 0.1 (f'' < 0): the Newton step would climb to
    the maximum at 0; the steepest-descent fallback reaches a minimum."""
    def system(x):
        return (np.sum(x**4 - x**2, 1), 4 * x**3 - 2 * x,
                (12 * x**2 - 2)[:, :, None])

    x, norm = host_newton_minimize(system, np.array([[0.1], [-0.3]]), tol=1e-10)
    np.testing.assert_allclose(np.abs(x), 1 / np.sqrt(2), rtol=1e-8)
    assert np.all(norm < 1e-10)


def test_host_newton_stops_each_problem_on_its_own_reduction():
    """With a reduction, each problem's threshold follows its own start."""
    scales = np.array([1.0, 1e-3])

    def system(x):  # f = sum(x^4) / 4 per problem: Newton shrinks x by 2/3
        return np.sum(x**4, 1) / 4, x**3, 3 * x[:, :, None] ** 2

    start = np.array([[1.0], [1.0]]) * scales[:, None] ** (1 / 3)
    x, norm = host_newton_minimize(system, start, tol=1e-2, reduction=0.1)
    # thresholds min(tol, 0.1 * start norm): 1e-2 and 1e-4; a step multiplies
    # the gradient by 8/27, so each stops within that factor of its own
    threshold = np.array([1e-2, 1e-4])
    assert np.all(norm <= threshold) and np.all(norm > 0.25 * threshold)


@pytest.mark.parametrize("inner_solver", SOLVERS)
def test_non_finite_data_is_flagged(inner_solver, rng):
    (X, y), outer = make_data("binary", rng)
    X = X.at[0, 0].set(jnp.nan)
    result = _call(Implicit(inner_solver=inner_solver), make_problem("binary"),
                   implicit_hparams("binary", rng), ((X, y), outer))
    assert not bool(result.finite)


def test_traced_newton_and_system_agree_with_jax_hessian(rng):
    matrix = rng.standard_normal((3, 3))
    matrix = jnp.asarray(matrix @ matrix.T + np.eye(3))

    def fun(w):
        return 0.5 * w["a"] @ matrix @ w["a"] + jnp.sum(jnp.logaddexp(0.0, w["a"]))

    params = {"a": jnp.asarray(rng.standard_normal(3))}
    value, grad, hessian = newton_system(fun, params)
    np.testing.assert_allclose(value, fun(params))
    np.testing.assert_allclose(grad, jax.grad(fun)(params)["a"])
    np.testing.assert_allclose(hessian, jax.hessian(fun)(params)["a"]["a"])
    solution, norm = newton_minimize(fun, params, tol=1e-12)
    assert float(norm) < 1e-12
    assert float(jnp.linalg.norm(jax.grad(fun)(solution)["a"])) < 1e-12


def test_cholesky_solve_survives_a_null_direction():
    """A softmax's shift of all intercepts: H singular, b orthogonal to it."""
    matrix = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
    solution = cholesky_solve(matrix, jnp.array([1.0, -1.0]))
    assert bool(jnp.all(jnp.isfinite(solution)))
    np.testing.assert_allclose(matrix @ solution, [1.0, -1.0], rtol=1e-6)
    assert Cholesky()(lambda v: matrix @ v, jnp.array([1.0, -1.0])).shape == (2,)
