"""Implicit(inner_solver="scipy") (SciPy L-BFGS-B + CG driving jitted JAX pieces):
against the traced Implicit method, batched over folds, and inside the outer
loop with fixed hyperparameters; HostImplicit, its former name. (Checked against
central finite differences in float64 with the other inner solvers, in
test_core_hypergradients.py.)"""

import time

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from bilevel_problems import (
    implicit_hparams,
    init_params,
    make_data,
    make_problem,
)

from skfarho.core import (
    CG,
    Batched,
    Cholesky,
    HostImplicit,
    Implicit,
    minimize_hyperparameters,
)
from skfarho.core.host_implicit import host_programs
from skfarho.core.outer import compiled_outer_step, compiled_solve_inner

KINDS = ["ridge", "binary", "multinomial"]


def _scipy(**kwargs):
    return Implicit(inner_solver="scipy", **kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_scipy_implicit_equals_traced_implicit(kind, rng):
    data = make_data(kind, rng)
    problem = make_problem(kind)
    hparams = implicit_hparams(kind, rng)
    traced_method = Implicit(CG(), tol=1e-12)
    traced = jax.jit(lambda h: traced_method(problem, h, *data))(hparams)
    host = _scipy(tol=1e-11)(problem, hparams, *data)
    np.testing.assert_allclose(float(host.value), float(traced.value), rtol=1e-8)
    for got, want in zip(jax.tree_util.tree_leaves(host.grad),
                         jax.tree_util.tree_leaves(traced.grad), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5,
                                   atol=1e-6 * np.max(np.abs(want)))
    solved = {"scipy": _scipy(tol=1e-11).solve_inner(problem, hparams, data[0]),
              "lbfgs": traced_method.solve_inner(problem, hparams, data[0])}
    for got, want in zip(jax.tree_util.tree_leaves(solved["scipy"]),
                         jax.tree_util.tree_leaves(solved["lbfgs"]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_inner_solver_sets_traceable_and_default_linear_solver():
    assert Implicit().traceable and not _scipy().traceable
    assert Implicit() == Implicit(CG())  # the default is resolved, as before
    assert _scipy().linear_solver == CG(200, differentiable=False)
    assert Implicit(inner_solver="newton").traceable
    assert not Implicit(inner_solver="host_newton").traceable
    assert Implicit(inner_solver="host_newton").linear_solver == Cholesky()
    with pytest.raises(ValueError, match="inner_solver"):
        Implicit(inner_solver="bogus")


def test_host_implicit_is_the_scipy_inner_solver():
    """The former class, now a function: same arguments, an equal (hashable)
    method, so the compiled-step caches hit whichever name built it."""
    assert HostImplicit() == _scipy()
    assert hash(HostImplicit()) == hash(_scipy())
    method = HostImplicit(tol=1e-4, max_inner_iter=20, max_linear_iter=7)
    assert method == Implicit(CG(7, differentiable=False), tol=1e-4,
                              max_inner_iter=20, inner_solver="scipy")
    problem, optimizer = make_problem("binary"), optax.adam(0.1)
    assert (compiled_outer_step(problem, Batched(HostImplicit()), optimizer)
            is compiled_outer_step(problem, Batched(_scipy()), optimizer))
    assert (compiled_solve_inner(problem, Batched(HostImplicit()))
            is compiled_solve_inner(problem, Batched(_scipy())))


def _stacked(kind, rng, folds=3):
    pairs = [make_data(kind, rng) for _ in range(folds)]
    def stack(side):
        return tuple(jnp.stack(parts)
                     for parts in zip(*[p[side] for p in pairs], strict=True))

    return stack(0), stack(1)


def test_batched_scipy_implicit_equals_vmapped_implicit(rng):
    inner, outer = _stacked("binary", rng)
    problem = make_problem("binary")
    hparams = implicit_hparams("binary", rng)
    traced = Batched(Implicit(CG(), tol=1e-12))(problem, hparams, inner, outer)
    host = Batched(_scipy(tol=1e-11))(problem, hparams, inner, outer)
    assert isinstance(host.params["w"], np.ndarray) and host.params["w"].shape[0] == 3
    np.testing.assert_allclose(host.value, traced.value, rtol=1e-8)
    np.testing.assert_allclose(host.grad["log_alpha"], traced.grad["log_alpha"],
                               rtol=1e-6, atol=1e-10)


def test_outer_loop_with_fixed_hyperparameters_matches_traced(rng):
    """Same outer trajectory as the jitted loop, w0 passed as a fixed value."""
    inner, outer = _stacked("binary", rng, folds=2)
    problem = make_problem("binary", learn_init=True)
    w0 = init_params("binary", 4)
    hparams = {"log_alpha": jnp.zeros(4)}
    runs = {}
    for name, method in [("host", _scipy(tol=1e-10)),
                         ("traced", Implicit(CG(), tol=1e-10))]:
        runs[name] = minimize_hyperparameters(
            problem, hparams, inner, outer, method=Batched(method),
            optimizer=optax.adam(0.1), num_steps=8, fixed={"w0": w0})
    np.testing.assert_allclose(runs["host"].history["value"],
                               runs["traced"].history["value"], rtol=1e-7)
    np.testing.assert_allclose(runs["host"].hparams["log_alpha"],
                               runs["traced"].hparams["log_alpha"], rtol=1e-6)


def _settled(compile_counter, quiet=1.0):
    """The compilation count once it has not changed for ``quiet`` seconds."""
    count = compile_counter()
    while True:
        time.sleep(quiet)
        if compile_counter() == count:
            return count
        count = compile_counter()


def test_new_values_do_not_recompile(rng, compile_counter):
    data = make_data("binary", rng)
    problem = make_problem("binary")
    method = _scipy(tol=1e-8)
    method(problem, implicit_hparams("binary", rng), *data)
    before = _settled(compile_counter)  # earlier tests' background compiles done
    method(problem, implicit_hparams("binary", rng), *data)
    assert compile_counter() == before
    assert set(host_programs(problem)) == {"inner_value_and_grad", "hypergradient"}


def test_non_finite_data_is_flagged(rng):
    (X, y), outer = make_data("binary", rng)
    X = X.at[0, 0].set(jnp.nan)
    result = _scipy()(make_problem("binary"), implicit_hparams("binary", rng),
                      (X, y), outer)
    assert not bool(result.finite)


def test_plain_cg_equals_differentiable_cg(rng):
    matrix = rng.standard_normal((6, 6))
    matrix = jnp.asarray(matrix @ matrix.T + 6 * np.eye(6))
    b = {"a": jnp.asarray(rng.standard_normal(4)),
         "b": jnp.asarray(rng.standard_normal(2))}
    flat_b, unravel = jax.flatten_util.ravel_pytree(b)

    def matvec(v):
        return unravel(matrix @ jax.flatten_util.ravel_pytree(v)[0])

    x0 = jax.tree_util.tree_map(jnp.ones_like, b)
    plain = CG(differentiable=False)(matvec, b, x0=x0, tol=1e-12)
    exact = np.linalg.solve(matrix, flat_b)
    np.testing.assert_allclose(jax.flatten_util.ravel_pytree(plain)[0], exact,
                               rtol=1e-9)


def test_idle_compiles_run_while_waiting_and_are_dropped_otherwise():
    """compile_when_idle: run by the next wait_compiled that has to wait (the
    latest request first), dropped by one that has nothing to wait for, and
    queued afresh when requested again after that."""
    import concurrent.futures
    import threading

    from skfarho.core import compile_ahead

    compiling = concurrent.futures.Future()  # a program still compiling
    first = compile_ahead.compile_when_idle(jax.jit(lambda x: x + 1.0),
                                            (jnp.ones(3),))
    latest = compile_ahead.compile_when_idle(jax.jit(lambda x: x * 2.0),
                                             (jnp.ones(4),))
    assert not first.done() and not latest.done()
    threading.Timer(0.5, compiling.set_result, (None,)).start()
    compile_ahead.wait_compiled(compiling)
    assert latest.done() and latest.exception() is None
    assert compiling.done() and not compile_ahead._DEFERRED
    program = jax.jit(lambda x: x - 1.0)
    stale = compile_ahead.compile_when_idle(program, (jnp.ones(5),))
    compile_ahead.wait_compiled(compiling)  # nothing to wait for: queue dropped
    assert stale.cancelled() and not compile_ahead._DEFERRED
    again = compile_ahead.compile_when_idle(program, (jnp.ones(5),))
    assert again is not stale and not again.done()
    compile_ahead.wait_compiled(compiling)


def test_compile_level_follows_the_work_of_a_call(rng):
    """Small programs compile at LLVM level 0, large ones well: same numbers."""
    from skfarho.core.compile_ahead import (
        FAST_COMPILE,
        QUICK_COMPILE,
        QUICK_WORK,
        _known,
        compiler_options,
        work_of,
    )

    if jax.default_backend() != "cpu":
        pytest.skip("compiler options are chosen on CPU only")
    level = "xla_backend_optimization_level"
    assert compiler_options(QUICK_WORK)[level] == QUICK_COMPILE[level] == 0
    assert compiler_options(2 * QUICK_WORK)[level] == FAST_COMPILE[level] == 2
    assert compiler_options(None)[level] == 2
    # an option this XLA does not know is left out, not an error at every fit
    assert _known(((level, 0), ("xla_no_such_option", True))) == {level: 0}
    assert work_of({"w": np.zeros((5, 3)), "b": np.zeros(3)},
                   (np.zeros((4, 100, 5)), np.zeros((4, 100)))) == 400 * 18
    assert work_of({"w": np.zeros(5)}, (np.zeros(1000),)) is None  # sparse entries

    data = make_data("multinomial", rng)
    problem = make_problem("multinomial")
    hparams = implicit_hparams("multinomial", rng)
    params = _scipy(tol=1e-10).solve_inner(problem, hparams, data[0])
    quick = host_programs(problem, work=1.0)
    fast = host_programs(problem, work=None)
    assert quick["hypergradient"] is not fast["hypergradient"]
    arguments = (params, jax.tree_util.tree_map(jnp.zeros_like, params), 1e-10,
                 hparams, {}, *data)
    quick_leaves = jax.tree_util.tree_leaves(quick["hypergradient"](*arguments))
    fast_leaves = jax.tree_util.tree_leaves(fast["hypergradient"](*arguments))
    for got, expected in zip(quick_leaves, fast_leaves, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("inner_solver", ["scipy", "lbfgs"])
def test_linear_tol_factor_loosens_the_linear_solve(inner_solver, rng):
    """Implicit(linear_tol_factor): the adjoint solved to factor * tol."""
    data = make_data("multinomial", rng)
    problem = make_problem("multinomial")
    hparams = implicit_hparams("multinomial", rng)
    exact = Implicit(tol=1e-11, inner_solver=inner_solver)(problem, hparams, *data)
    loose = Implicit(tol=1e-11, inner_solver=inner_solver,
                     linear_tol_factor=1e9)(problem, hparams, *data)
    error = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(jax.tree_util.tree_leaves(loose.grad),
                                jax.tree_util.tree_leaves(exact.grad), strict=True))
    assert 1e-9 < error < 1e-1


def test_float32_tol_computes_loose_calls_in_float32(rng, host_program_dtypes):
    """Calls at a tolerance of at least float32_tol run their programs on float32
    arguments (and compute in float32) and return float64 results close to the
    exact hypergradient; tighter calls stay in float64."""
    data = make_data("multinomial", rng)
    problem = make_problem("multinomial")
    hparams = implicit_hparams("multinomial", rng)
    method = _scipy(float32_tol=1e-4)
    loose = method(problem, hparams, *data, tol=1e-4)
    float32 = {np.dtype(np.float32)}
    assert host_program_dtypes and all(
        call == (float32, float32) for call in host_program_dtypes)
    for leaf in jax.tree_util.tree_leaves((loose.value, loose.grad, loose.params,
                                           loose.warm_start)):
        assert leaf.dtype == np.float64
    exact = _scipy(tol=1e-11)(problem, hparams, *data)
    for got, want in zip(jax.tree_util.tree_leaves(loose.grad),
                         jax.tree_util.tree_leaves(exact.grad), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-4)
    host_program_dtypes.clear()
    method(problem, hparams, *data, tol=1e-6)
    assert host_program_dtypes and all(
        np.dtype(np.float32) not in arguments for arguments, _ in host_program_dtypes)


def test_float32_solve_short_of_tol_is_finished_in_float64(rng, host_program_dtypes):
    """A tolerance below float32's rounding of the loss: the float32 solve stops
    short, the call goes on in float64 and returns the float64 method's result."""
    data = make_data("binary", rng)
    problem = make_problem("binary")
    hparams = implicit_hparams("binary", rng)
    got = _scipy(float32_tol=1e-12)(problem, hparams, *data, tol=1e-12)
    seen = {dtype for arguments, _ in host_program_dtypes for dtype in arguments}
    assert seen == {np.dtype(np.float32), np.dtype(np.float64)}
    want = _scipy()(problem, hparams, *data, tol=1e-12)
    np.testing.assert_allclose(got.value, want.value, rtol=1e-9)
    for a, b in zip(jax.tree_util.tree_leaves(got.grad),
                    jax.tree_util.tree_leaves(want.grad), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-10)


def test_float32_tol_needs_the_scipy_inner_solver():
    with pytest.raises(ValueError, match="float32_tol"):
        Implicit(inner_solver="lbfgs", float32_tol=1e-4)
