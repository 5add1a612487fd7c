"""RTHO and TRHO against the batch methods they approximate, and in the outer loop."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from bilevel_problems import make_data, make_hparams, make_problem

from skfarho.core import RTHO, TRHO, Batched, Reverse, minimize_hyperparameters


def _flat(tree):
    return jax.flatten_util.ravel_pytree(tree)[0]


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam"])
def test_rtho_carries_exact_tangents_while_hparams_are_fixed(optimizer, rng):
    """Two RTHO chunks of K steps == reverse through 2K steps (same hparams)."""
    data = make_data("binary", rng)
    hparams = make_hparams("binary", rng, optimizer=optimizer, learn_init=True)
    problem = make_problem("binary", optimizer, num_steps=40, learn_init=True)
    method = RTHO(hyper_interval=20)
    call = jax.jit(lambda h, state: method(problem, h, *data, state))
    first = call(hparams, method.init_warm_start(problem, hparams, data[0]))
    second = call(hparams, first.warm_start)
    reference = Reverse()(problem, hparams, *data)
    np.testing.assert_allclose(second.value, reference.value, rtol=1e-12)
    np.testing.assert_allclose(_flat(second.grad), _flat(reference.grad),
                               rtol=1e-8, atol=1e-12)
    half = dataclasses.replace(problem, num_steps=20)
    np.testing.assert_allclose(_flat(first.grad),
                               _flat(Reverse()(half, hparams, *data).grad),
                               rtol=1e-8, atol=1e-12)


def test_trho_is_reverse_truncated_to_the_chunk(rng):
    data = make_data("multinomial", rng)
    hparams = make_hparams("multinomial", rng, optimizer="momentum")
    problem = make_problem("multinomial", "momentum", num_steps=30)
    method = TRHO(hyper_interval=15)
    call = jax.jit(lambda h, state: method(problem, h, *data, state))
    first = call(hparams, method.init_warm_start(problem, hparams, data[0]))
    second = call(hparams, first.warm_start)
    reference = Reverse(truncate=15)(problem, hparams, *data)
    np.testing.assert_allclose(second.value, reference.value, rtol=1e-12)
    np.testing.assert_allclose(_flat(second.grad), _flat(reference.grad),
                               rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("method", [RTHO(hyper_interval=10), TRHO(hyper_interval=10)],
                         ids=repr)
def test_online_outer_loop_lowers_validation_loss(method, rng):
    inner, outer = make_data("binary", rng, n_train=40, n_val=40, d=6)
    problem = make_problem("binary", d=6, num_steps=100)
    hparams = {"log_alpha": jnp.full(6, 3.0), "log_lr": jnp.asarray(np.log(0.3))}
    result = minimize_hyperparameters(problem, hparams, inner, outer, method=method,
                                      optimizer=optax.adam(0.1), num_steps=40)
    values = result.history["value"]
    assert values.min() < 0.8 * values[0]
    # the inner state advanced across outer steps: far fewer total inner steps
    # (40 x 10) than 40 batch runs of 100 steps, and a finite final fit
    params = method.solve_inner(problem, result.hparams, inner)
    assert np.all(np.isfinite(_flat(params)))


def test_online_methods_batch_over_problems(rng):
    problem = make_problem("binary", num_steps=20)
    hparams = make_hparams("binary", rng)
    folds = [make_data("binary", np.random.default_rng(seed)) for seed in range(2)]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *folds)
    result = minimize_hyperparameters(problem, hparams, *stacked,
                                      method=Batched(RTHO(hyper_interval=5)),
                                      num_steps=3)
    assert result.params["w"].shape == (2, 4)
