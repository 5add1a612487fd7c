"""Rprop with secant steps, and the outer loop's step tolerance."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from bilevel_problems import make_data, make_problem

from skfarho.core import (
    Batched,
    HostImplicit,
    Implicit,
    minimize_hyperparameters,
    rprop_secant,
    tolerance_schedule,
)


def _run(optimizer, gradient, start, steps):
    x, state, path = jnp.asarray(start), optimizer.init(jnp.asarray(start)), []
    for _ in range(steps):
        updates, state = optimizer.update(gradient(x), state, x)
        x = x + updates
        path.append(float(x))
    return np.array(path)


@pytest.mark.parametrize("gradient, root", [
    (lambda x: 2.0 * (x - 3.0), 3.0),                       # quadratic
    (lambda x: jnp.tanh(x - 3.0) + 0.3 * (x - 3.0), 3.0),   # curved
    (lambda x: jnp.exp(x + 2.0) - 1.0, -2.0),               # skewed, downhill
    (lambda x: jnp.sign(x - 4.0) * jnp.sqrt(jnp.abs(x - 4.0)), 4.0),  # no slope
])
def test_rprop_secant_finds_the_root_of_the_gradient(gradient, root):
    path = _run(rprop_secant(0.2), gradient, 0.0, 14)
    assert abs(path[-1] - root) < 1e-2
    # it moves at every step until it has converged
    moves = np.abs(np.diff(np.concatenate([[0.0], path])))
    first_small = np.argmax(moves < 1e-3) if np.any(moves < 1e-3) else len(moves)
    assert np.all(moves[:first_small] > 0)


def test_rprop_secant_needs_fewer_steps_than_optax_rprop():
    def steps_to(optimizer):
        path = _run(optimizer, lambda x: 2.0 * (x - 3.0), 0.0, 40)
        return int(np.argmax(np.abs(path - 3.0) < 1e-2))

    ours, theirs = steps_to(rprop_secant(0.2)), steps_to(optax.rprop(0.2))
    assert ours <= 8 < theirs


def test_rprop_secant_adapts_each_entry_and_injects_its_step_size():
    optimizer = optax.inject_hyperparams(rprop_secant)(learning_rate=0.5)
    params = {"a": jnp.zeros(2), "b": jnp.asarray(1.0)}
    state = optimizer.init(params)
    updates, state = optimizer.update(
        {"a": jnp.array([1.0, -2.0]), "b": jnp.asarray(-0.1)}, state, params)
    np.testing.assert_allclose(updates["a"], [-0.5, 0.5])
    np.testing.assert_allclose(updates["b"], 0.5)
    # the same sign again: the step grows by eta_plus; a flip: a secant step back
    updates, state = optimizer.update(
        {"a": jnp.array([1.0, 2.0]), "b": jnp.asarray(-0.1)}, state, params)
    np.testing.assert_allclose(updates["a"][0], -1.0)
    # entry 1 went from -2 (at 0) to +2 (at 0.5): the secant root is at 0.25
    np.testing.assert_allclose(updates["a"][1], -0.25)
    np.testing.assert_allclose(updates["b"], 1.0)


def _ridge_outer_loop(rng):
    """``run(**options)``: the outer loop of one ridge strength, rprop_secant."""
    inner, outer = make_data("ridge", rng)
    problem = make_problem("ridge")
    hparams = {"log_alpha": jnp.asarray(0.0)}

    def run(**options):
        return minimize_hyperparameters(
            problem, hparams, inner, outer, method=Implicit(),
            optimizer=rprop_secant(0.2), num_steps=60,
            tol_schedule=tolerance_schedule("exponential", 1e-6, 1e-10), **options)

    return run


def test_step_tolerance_stops_the_outer_loop(rng):
    run = _ridge_outer_loop(rng)
    full, stopped = run(), run(step_tol=1e-3)
    assert stopped.converged and not full.converged
    assert stopped.n_steps < 25
    # it stopped where the full run ends up
    np.testing.assert_allclose(stopped.hparams["log_alpha"],
                               full.hparams["log_alpha"], atol=1e-2)


def test_joint_host_solve_equals_the_loop_over_folds(rng):
    """Batched host-side implicit: one SciPy run over all folds equals one per
    fold (both to tight tolerances), per fold."""
    folds = [make_data("binary", rng, n_train=30, n_val=20, d=5) for _ in range(4)]
    inner = tuple(np.stack(parts) for parts in zip(*(f[0] for f in folds),
                                                   strict=True))
    outer = tuple(np.stack(parts) for parts in zip(*(f[1] for f in folds),
                                                   strict=True))
    problem = make_problem("binary", d=5)
    hparams = {"log_alpha": jnp.linspace(-1.0, 1.0, 5)}
    method = HostImplicit(tol=1e-11)
    joint = Batched(method)(problem, hparams, inner, outer)
    for k in range(4):
        one = method(problem, hparams, tuple(part[k] for part in inner),
                     tuple(part[k] for part in outer))
        np.testing.assert_allclose(joint.params["w"][k], one.params["w"],
                                   rtol=1e-6, atol=1e-9)
    looped = np.mean([method(problem, hparams, tuple(p[k] for p in inner),
                             tuple(p[k] for p in outer)).grad["log_alpha"]
                      for k in range(4)], axis=0)
    np.testing.assert_allclose(joint.grad["log_alpha"], looped, rtol=1e-6,
                               atol=1e-10)


def test_gain_tolerance_stops_once_bracketed(rng):
    """gain_tol stops when a step's predicted decrease is negligible, only after
    the hypergradient has changed sign, where the full run ends up."""
    run = _ridge_outer_loop(rng)
    full, stopped = run(), run(gain_tol=1e-4)
    assert stopped.converged and stopped.n_steps < full.n_steps
    np.testing.assert_allclose(stopped.hparams["log_alpha"],
                               full.hparams["log_alpha"], atol=5e-2)
    # a huge gain_tol cannot stop it before the optimum is bracketed
    assert run(gain_tol=1e6).n_steps >= 2


def test_warm_start_meeting_the_tolerance_still_moves():
    """reduction: a start that meets tol is returned as it is without it (SciPy),
    improved tenfold with it (SciPy's L-BFGS-B and the traced optax L-BFGS)."""
    import jax

    from skfarho.core.inner_solve import lbfgs_minimize, scipy_lbfgs_minimize

    scale = jnp.array([1.0, 10.0, 100.0])
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda w: 0.5 * jnp.sum(scale * (w - 1.0) ** 2)))
    start = jnp.array([1.0 + 1e-4, 1.0 - 1e-5, 1.0 + 1e-6])
    start_norm = float(np.linalg.norm(value_and_grad(start)[1]))
    same = scipy_lbfgs_minimize(value_and_grad, start, tol=1e-2)
    np.testing.assert_array_equal(same, start)
    moved = scipy_lbfgs_minimize(value_and_grad, start, tol=1e-2, reduction=0.1)
    assert float(np.linalg.norm(value_and_grad(moved)[1])) <= 0.1 * start_norm
    traced, norm = jax.jit(lambda w: lbfgs_minimize(
        lambda v: value_and_grad(v)[0], w, tol=1e-2, reduction=0.1))(start)
    assert float(norm) <= 0.1 * start_norm
    assert float(np.linalg.norm(value_and_grad(traced)[1])) <= 0.1 * start_norm
