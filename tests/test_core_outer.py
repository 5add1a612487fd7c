"""The outer loop, batched problems, divergence handling and the float64 scope."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from bilevel_problems import make_data, make_hparams, make_problem

from skfarho.core import (
    Batched,
    DivergenceError,
    Forward,
    Implicit,
    Reverse,
    float64_scope,
    minimize_hyperparameters,
    tolerance_schedule,
)
from skfarho.core.outer import compiled_outer_step


@pytest.mark.parametrize("method", [Implicit(), Reverse()], ids=repr)
def test_outer_loop_lowers_validation_loss(method, rng):
    inner, outer = make_data("binary", rng, n_train=40, n_val=40, d=6)
    problem = make_problem("binary", d=6)
    hparams = {"log_alpha": jnp.full(6, 3.0), "log_lr": jnp.asarray(np.log(0.5))}
    if isinstance(method, Implicit):
        hparams.pop("log_lr")
    result = minimize_hyperparameters(
        problem, hparams, inner, outer, method=method,
        optimizer=optax.adam(0.2), num_steps=30,
        tol_schedule=tolerance_schedule("exponential", 1e-4),
    )
    values = result.history["value"]
    assert values.shape == (30,) and result.n_steps == 30
    assert values.min() < 0.9 * values[0]
    assert len(result.history["hparams"]) == 30
    # the returned hyperparameters are the best ones seen
    best = int(np.argmin(values))
    np.testing.assert_allclose(result.hparams["log_alpha"],
                               result.history["hparams"][best]["log_alpha"])


def test_early_stopping_and_callback(rng):
    inner, outer = make_data("ridge", rng)
    problem = make_problem("ridge")
    hparams = {"log_alpha": jnp.zeros(4)}
    stopped = minimize_hyperparameters(problem, hparams, inner, outer,
                                       num_steps=200, patience=3, min_delta=0.5)
    assert stopped.converged and stopped.n_steps < 10
    calls = []
    by_callback = minimize_hyperparameters(
        problem, hparams, inner, outer, num_steps=50,
        callback=lambda k, h, r: calls.append(k) or k == 4)
    assert by_callback.n_steps == 5 and calls == [0, 1, 2, 3, 4]
    assert by_callback.converged


def test_outer_step_is_compiled_once_per_configuration(rng):
    inner, outer = make_data("ridge", rng)
    problem = make_problem("ridge")
    optimizer = optax.sgd(0.1)
    hparams = {"log_alpha": jnp.zeros(4)}
    minimize_hyperparameters(problem, hparams, inner, outer, optimizer=optimizer,
                             num_steps=3)
    step = compiled_outer_step(problem, Implicit(), optimizer, None)
    size = step._cache_size()
    inner2, outer2 = make_data("ridge", np.random.default_rng(1))
    minimize_hyperparameters(problem, {"log_alpha": jnp.ones(4)}, inner2, outer2,
                             optimizer=optimizer, num_steps=3)
    assert step._cache_size() == size == 1


def test_batched_is_the_mean_of_the_problems(rng):
    problem = make_problem("binary")
    hparams = make_hparams("binary", rng)
    folds = [make_data("binary", np.random.default_rng(seed)) for seed in range(3)]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *folds)
    for method in (Reverse(), Forward(), Implicit(tol=1e-10)):
        h = dict(hparams) if not isinstance(method, Implicit) else {
            k: v for k, v in hparams.items() if k != "log_lr"}
        batched = jax.jit(lambda h, m=method: Batched(m)(problem, h, *stacked))(h)
        single = jax.jit(lambda h, fold, m=method: m(problem, h, *fold))
        singles = [single(h, fold) for fold in folds]
        np.testing.assert_allclose(batched.value,
                                   np.mean([s.value for s in singles]), rtol=1e-10)
        np.testing.assert_allclose(
            batched.grad["log_alpha"],
            np.mean([s.grad["log_alpha"] for s in singles], axis=0), rtol=1e-8)


def test_batched_outer_loop_with_warm_starts(rng):
    problem = make_problem("binary")
    folds = [make_data("binary", np.random.default_rng(seed)) for seed in range(3)]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *folds)
    result = minimize_hyperparameters(problem, {"log_alpha": jnp.zeros(4)}, *stacked,
                                      method=Batched(Implicit()), num_steps=5)
    assert result.params["w"].shape == (3, 4)
    assert np.all(np.isfinite(result.history["value"]))


def test_diverging_inner_dynamics_are_flagged_and_named(rng):
    inner, outer = make_data("binary", rng)
    problem = make_problem("binary", num_steps=200)
    hparams = make_hparams("binary", rng, log_lr=np.log(1e4))
    result = Reverse()(problem, hparams, inner, outer)
    assert not bool(result.finite)
    with pytest.raises(DivergenceError, match="learning rate"):
        minimize_hyperparameters(problem, hparams, inner, outer, method=Reverse(),
                                 num_steps=3)


@pytest.mark.parametrize("inner_solver", ["lbfgs", "scipy"])
def test_implicit_divergence_names_its_own_knob(inner_solver, rng):
    """The message comes from the method's divergence_hint, batched or not."""
    (X, y), outer = make_data("binary", rng)
    X = X.at[0, 0].set(jnp.inf)
    problem = make_problem("binary")
    method = Batched(Implicit(inner_solver=inner_solver))
    stacked = jax.tree_util.tree_map(lambda leaf: leaf[None], ((X, y), outer))
    with pytest.raises(DivergenceError, match="raise the regularization"):
        minimize_hyperparameters(problem, {"log_alpha": jnp.zeros(4)}, *stacked,
                                 method=method, num_steps=2)


def test_a_non_method_is_refused(rng):
    inner, outer = make_data("ridge", rng)
    with pytest.raises(TypeError, match="HypergradientMethod"):
        minimize_hyperparameters(make_problem("ridge"), {"log_alpha": jnp.zeros(4)},
                                 inner, outer, method=lambda *args: None)


def test_tolerance_schedules():
    assert tolerance_schedule("exponential", 1.0)(2) == pytest.approx(0.81)
    assert tolerance_schedule("cubic", 1.0)(1) == pytest.approx(1 / 8)
    assert tolerance_schedule("quadratic", 1.0, minimum=0.5)(5) == 0.5
    with pytest.raises(ValueError, match="kind"):
        tolerance_schedule("linear")


@pytest.mark.no_x64
def test_float64_scope_does_not_touch_global_config():
    before = jax.config.jax_enable_x64
    with float64_scope():
        assert jnp.ones(1).dtype == jnp.float64
    assert jax.config.jax_enable_x64 == before
    assert jnp.ones(1).dtype == (jnp.float64 if before else jnp.float32)


def test_persistent_cache_is_opt_in(tmp_path):
    import subprocess
    import sys

    code = (
        "import jax, skfarho;"
        "before = jax.config.jax_compilation_cache_dir;"
        "from skfarho.core import enable_persistent_cache;"
        f"path = enable_persistent_cache({str(tmp_path)!r});"
        "print(before, jax.config.jax_compilation_cache_dir == str(path))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, env={"PATH": ""}).stdout.split()
    assert out == ["None", "True"]
