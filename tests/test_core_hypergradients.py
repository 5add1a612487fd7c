"""Every hypergradient method against central finite differences (float64), the
methods against each other, and the interface they share (``fixed=``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bilevel_problems import (
    central_difference,
    implicit_hparams,
    implicit_reference,
    make_data,
    make_hparams,
    make_problem,
    random_direction,
    tree_dot,
)

from skfarho.core import (
    CG,
    RTHO,
    TRHO,
    Batched,
    Cholesky,
    Forward,
    HypergradientMethod,
    Implicit,
    Neumann,
    Reverse,
)
from skfarho.core.unroll import unrolled_objective

KINDS = ["ridge", "binary", "multinomial"]


def _relative_error(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-12)


def _check_directional(method, problem, hparams, data, reference, rng, rtol=1e-5):
    inner, outer = data
    call = lambda h: method(problem, h, inner, outer)  # noqa: E731
    result = (jax.jit(call) if method.traceable else call)(hparams)
    reference = jax.jit(reference)
    assert bool(result.finite)
    for _ in range(3):
        direction = random_direction(hparams, rng)
        expected = central_difference(reference, hparams, direction)
        assert _relative_error(tree_dot(result.grad, direction), expected) <= rtol


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
@pytest.mark.parametrize(
    "method", [Reverse(), Reverse(checkpoint=True), Forward()], ids=repr
)
def test_unrolled_methods_match_finite_differences(kind, optimizer, method, rng):
    """Per-feature L2, per-example weights, learning rate, momentum, init params."""
    data = make_data(kind, rng)
    problem = make_problem(kind, optimizer, num_steps=60, learn_init=True)
    hparams = make_hparams(kind, rng, optimizer=optimizer, learn_init=True)

    def reference(h):
        return unrolled_objective(problem, h, *data)[0]

    _check_directional(method, problem, hparams, data, reference, rng)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", [
    Implicit(CG(), tol=1e-12), Implicit(Cholesky(), tol=1e-12),
    Implicit(inner_solver="scipy", tol=1e-11),
    Implicit(inner_solver="newton", tol=1e-11),
    Implicit(inner_solver="host_newton", tol=1e-11)], ids=repr)
def test_implicit_matches_finite_differences(kind, method, rng):
    """Every inner solver (traced L-BFGS, SciPy's on the host, Newton traced
    and on the host) and linear solver."""
    data = make_data(kind, rng)
    problem = make_problem(kind)
    hparams = implicit_hparams(kind, rng)
    _check_directional(method, problem, hparams, data,
                       implicit_reference(problem, data), rng)


def test_implicit_ridge_matches_closed_form(rng):
    """Ridge: w*(alpha) = (X'X/n + diag(alpha)/n)^-1 X'y/n, differentiated by hand."""
    (X, y), (Xv, yv) = make_data("ridge", rng)
    n, d = X.shape

    def inner_loss(w, log_alpha, X, y):
        return 0.5 * jnp.mean((X @ w - y) ** 2) + 0.5 * jnp.sum(
            jnp.exp(log_alpha) * w**2) / X.shape[0]

    def outer_loss(w, log_alpha, X, y):
        return 0.5 * jnp.mean((X @ w - y) ** 2)

    from skfarho.core import BilevelProblem

    problem = BilevelProblem(inner_loss, outer_loss, lambda h: jnp.zeros(d))
    log_alpha = jnp.asarray(rng.normal(0.0, 0.5, d))
    alpha = np.exp(np.asarray(log_alpha))
    A = np.asarray(X.T @ X) / n + np.diag(alpha) / n
    w = np.linalg.solve(A, np.asarray(X.T @ y) / n)
    residual = np.asarray(Xv) @ w - np.asarray(yv)
    grad_w = np.asarray(Xv).T @ residual / len(yv)
    v = np.linalg.solve(A, grad_w)
    expected = -v * alpha * w / n  # d/dlog_alpha of the stationarity condition
    result = Implicit(tol=1e-12)(problem, log_alpha, (X, y), (Xv, yv))
    np.testing.assert_allclose(result.grad, expected, rtol=1e-6)


def test_neumann_approximates_cg(rng):
    data = make_data("binary", rng)
    problem = make_problem("binary")
    hparams = make_hparams("binary", rng)
    hparams.pop("log_lr")
    exact = Implicit(CG(), tol=1e-12)(problem, hparams, *data).grad
    approx = Implicit(Neumann(steps=400), tol=1e-12)(problem, hparams, *data).grad
    flat_exact = jax.flatten_util.ravel_pytree(exact)[0]
    flat_approx = jax.flatten_util.ravel_pytree(approx)[0]
    assert jnp.linalg.norm(flat_approx - flat_exact) <= 1e-3 * jnp.linalg.norm(
        flat_exact)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_equals_reverse(kind, rng):
    data = make_data(kind, rng)
    problem = make_problem(kind, "momentum", num_steps=80, learn_init=True)
    hparams = make_hparams(kind, rng, optimizer="momentum", learn_init=True)
    reverse = Reverse()(problem, hparams, *data)
    forward = Forward()(problem, hparams, *data)
    chunked = Forward(chunk_size=7)(problem, hparams, *data)
    flat_r = jax.flatten_util.ravel_pytree(reverse.grad)[0]
    for other in (forward, chunked):
        flat_f = jax.flatten_util.ravel_pytree(other.grad)[0]
        assert jnp.linalg.norm(flat_f - flat_r) <= 1e-8 * jnp.linalg.norm(flat_r)
        np.testing.assert_allclose(other.value, reverse.value, rtol=1e-12)


def test_truncate_at_T_equals_full_and_checkpoint_equals_plain(rng):
    data = make_data("binary", rng)
    problem = make_problem("binary", "adam", num_steps=50)
    hparams = make_hparams("binary", rng, optimizer="adam")
    full = jax.flatten_util.ravel_pytree(Reverse()(problem, hparams, *data).grad)[0]
    for method in (Reverse(truncate=50), Reverse(checkpoint=True),
                   Reverse(truncate=50, checkpoint=True)):
        other = jax.flatten_util.ravel_pytree(method(problem, hparams, *data).grad)[0]
        np.testing.assert_allclose(other, full, rtol=1e-10, atol=1e-14)
    truncated = Reverse(truncate=5)(problem, hparams, *data).grad
    assert not np.allclose(truncated["log_lr"], full[-1])  # biased: differs


def test_truncated_matches_finite_differences_of_its_own_objective(rng):
    """Truncation = stop_gradient on the first T-K steps; FD through that."""
    data = make_data("ridge", rng)
    problem = make_problem("ridge", num_steps=40)
    hparams = make_hparams("ridge", rng)
    result = Reverse(truncate=10)(problem, hparams, *data)
    frozen = jax.lax.stop_gradient(hparams)
    direction = random_direction(hparams, rng)

    def last_k_only(h):
        from skfarho.core.dynamics import init_state, run

        state = run(problem, frozen, data[0], init_state(problem, frozen), 30)
        state = run(problem, h, data[0], state, 10)
        return problem.outer_loss(state.params, h, *data[1])

    expected = central_difference(last_k_only, hparams, direction)
    assert _relative_error(tree_dot(result.grad, direction), expected) <= 1e-5


@pytest.mark.parametrize("kind", ["ridge", "binary"])
def test_reverse_converges_to_implicit_as_T_grows(kind, rng):
    data = make_data(kind, rng)
    hparams = make_hparams(kind, rng, log_lr=np.log(0.5))
    implicit_h = {k: v for k, v in hparams.items() if k != "log_lr"}
    implicit = Implicit(tol=1e-12)(make_problem(kind), implicit_h, *data).grad
    target = jax.flatten_util.ravel_pytree(implicit)[0]
    errors = []
    for steps in (3, 15, 2000):
        grad = Reverse()(make_problem(kind, num_steps=steps), hparams, *data).grad
        grad.pop("log_lr")
        flat = jax.flatten_util.ravel_pytree(grad)[0]
        errors.append(float(jnp.linalg.norm(flat - target) / jnp.linalg.norm(target)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4


@pytest.mark.parametrize("method", [Reverse(), Forward(), Implicit(tol=1e-12)],
                         ids=repr)
def test_outer_loss_with_explicit_hyperparameter_term(method, rng):
    data = make_data("binary", rng)
    problem = make_problem("binary", outer_penalty=0.05)
    hparams = make_hparams("binary", rng)
    if isinstance(method, Implicit):
        hparams.pop("log_lr")
        reference = implicit_reference(problem, data)
    else:
        def reference(h):
            return unrolled_objective(problem, h, *data)[0]
    _check_directional(method, problem, hparams, data, reference, rng)
    # the explicit term is present: without it the hypergradient differs
    plain = make_problem("binary")
    assert not np.allclose(method(plain, hparams, *data).grad["log_alpha"],
                           method(problem, hparams, *data).grad["log_alpha"])


METHODS = [Reverse(), Reverse(truncate=10), Forward(), Implicit(tol=1e-10),
           Implicit(tol=1e-10, inner_solver="scipy"), RTHO(hyper_interval=20),
           TRHO(hyper_interval=20)]
BATCHED = [Batched(Reverse()), Batched(Implicit(tol=1e-10)),
           Batched(Implicit(tol=1e-10, inner_solver="scipy")),
           Batched(RTHO(hyper_interval=20))]


def test_every_method_follows_the_interface():
    for method in METHODS + BATCHED:
        assert isinstance(method, HypergradientMethod)
        assert isinstance(method.traceable, bool)
        assert "learning rate" in method.divergence_hint
        hash(method)  # the compiled-step caches key on it
    assert not isinstance(lambda *args: None, HypergradientMethod)


def _implicit(method):
    return isinstance(getattr(method, "method", method), Implicit)


def _allclose(got, want, rtol=1e-9):
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("method", METHODS + BATCHED, ids=repr)
def test_fixed_equals_merging_into_hparams(method, rng):
    """``fixed=`` gives what merging it into ``hparams`` gives, for every function
    of every method; only the learned hyperparameters get a hypergradient."""
    problem = make_problem("binary", num_steps=40, learn_init=True)
    hparams = make_hparams("binary", rng, learn_init=True)
    fixed = {"w0": hparams.pop("w0"), "sw_logit": hparams.pop("sw_logit")}
    if _implicit(method):
        hparams.pop("log_lr")
    merged = {**hparams, **fixed}
    inner, outer = make_data("binary", rng)
    if isinstance(method, Batched):  # two folds
        other = make_data("binary", np.random.default_rng(1))
        inner, outer = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves),
                                              (inner, outer), other)

    def run(h, fixed):
        warm = method.init_warm_start(problem, h, inner, fixed)
        result = method(problem, h, inner, outer, warm, None, fixed)
        params = method.solve_inner(problem, h, inner, result.warm_start, None, fixed)
        return warm, result, params

    if method.traceable:
        run = jax.jit(run)
    warm, with_fixed, params = run(hparams, fixed)
    merged_warm, with_merged, merged_params = run(merged, None)
    assert set(with_fixed.grad) == set(hparams)
    assert bool(with_fixed.finite)
    np.testing.assert_allclose(with_fixed.value, with_merged.value, rtol=1e-10)
    _allclose(with_fixed.grad, {key: with_merged.grad[key] for key in hparams},
              rtol=1e-7 if _implicit(method) else 1e-9)
    _allclose(with_fixed.params, with_merged.params)
    _allclose(params, merged_params)
    if isinstance(getattr(method, "method", method), RTHO):
        # one tangent per scalar hyperparameter: only the inner states compare
        warm, merged_warm = warm.inner, merged_warm.inner
    _allclose(warm, merged_warm)
