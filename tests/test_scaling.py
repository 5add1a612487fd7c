"""Scaling out: rows sharded over 4 simulated devices, and a Dask cluster.

The device checks run in a subprocess (this file run as a script), because the
number of simulated CPU devices is fixed when JAX starts; it reports its
numbers as JSON and the tests below compare them.
"""

import json
import os
import pickle
import pickletools
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

N_DEVICES = 4


# ---- the 4-device worker (this file as a script) ------------------------------
def _core_checks(rng):
    """Hypergradients and an outer loop on sharded vs. unsharded data."""
    import jax
    import jax.numpy as jnp
    from bilevel_problems import (
        central_difference,
        make_data,
        make_hparams,
        make_problem,
        random_direction,
        tree_dot,
    )

    from skfarho.core import RTHO, TRHO, Batched, Forward, Implicit, Reverse
    from skfarho.core import minimize_hyperparameters as minimize
    from skfarho.core.sharding import row_mesh, shard_rows

    mesh = row_mesh()
    inner, outer = make_data("binary", rng, n_train=32, n_val=20)
    hparams = make_hparams("binary", rng, n_train=32)
    problem = make_problem("binary", num_steps=60)
    placed_inner, placed_outer = shard_rows((inner, outer), mesh, axis=0)
    out = {"rows_per_device": placed_inner[0].addressable_shards[0].data.shape[0]}
    methods = {"reverse": Reverse(), "forward": Forward(), "rtho": RTHO(10),
               "trho": TRHO(10), "implicit": Implicit(tol=1e-10)}
    for name, method in methods.items():
        def call(h, inner, outer, method=method):
            warm = method.init_warm_start(problem, h, inner)
            result = method(problem, h, inner, outer, warm)
            return result.value, result.grad

        value, grad = jax.jit(call)(hparams, inner, outer)
        compiled = jax.jit(call).lower(hparams, placed_inner, placed_outer).compile()
        sharded_value, sharded_grad = compiled(hparams, placed_inner, placed_outer)
        out[name] = {"value": [float(value), float(sharded_value)],
                     "grad": [np.concatenate([np.ravel(leaf) for leaf in
                                              jax.tree_util.tree_leaves(g)]).tolist()
                              for g in (grad, sharded_grad)]}
        if name == "reverse":
            direction = random_direction(hparams, rng)
            def value(h, compiled=compiled):
                return compiled(h, placed_inner, placed_outer)[0]

            fd = central_difference(value, hparams, direction)
            out[name]["fd"] = [float(fd), float(tree_dot(sharded_grad, direction))]
            out["all_reduce_in_program"] = "all-reduce" in compiled.as_text()
    # the outer loop over two folds (leading fold axis, rows on axis 1)
    folds = jax.tree_util.tree_map(lambda a: jnp.stack([a, a[::-1]]), (inner, outer))
    learned = {"log_alpha": hparams["log_alpha"]}
    fixed = {"sw_logit": hparams["sw_logit"], "log_lr": hparams["log_lr"]}
    runs = [minimize(problem, learned, *data, method=Batched(Reverse()),
                     num_steps=8, fixed=fixed)
            for data in (folds, shard_rows(folds, mesh))]
    out["outer_loop"] = [np.asarray(run.hparams["log_alpha"]).tolist() for run in runs]
    return out


def _estimator_checks():
    """The same estimators fitted on one device and inside ``data_parallel``."""
    import warnings

    import jax
    from sklearn.datasets import load_diabetes

    from skfarho import HOLogisticRegression, HORidge
    from skfarho._data import FitData
    from skfarho._fit import placed_folds
    from skfarho._methods import resolve_method
    from skfarho.core.sharding import data_parallel

    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: compiles.append(event)
        if event == "/jax/core/compile/backend_compile_duration" else None)
    X, y = _cancer()
    Xr, yr = load_diabetes(return_X_y=True)
    Xr = StandardScaler().fit_transform(Xr)
    cases = {
        # 3 folds of 569 rows: buckets 768 (train) and 192 (validation)
        "logistic_reverse_cv3": (HOLogisticRegression(
            hypergradient="reverse", cv=3, outer_steps=8, random_state=0), X, y),
        # 3 of the 4 devices: 512 and 128 rows are padded to multiples of 3
        "ridge_forward_3_devices": (HORidge(
            hypergradient="forward", learn="feature_alpha", outer_steps=8,
            random_state=0), Xr, yr),
    }
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # convergence
        for name, (model, data_X, data_y) in cases.items():
            devices = jax.devices()[:3] if "3_devices" in name else None
            one = model.fit(data_X, data_y)
            single = [one.coef_.tolist(), np.ravel(one.intercept_).tolist(),
                      np.ravel(one.alpha_).tolist()]
            with data_parallel(devices):
                many = model.fit(data_X, data_y)
            out[name] = {"single": single,
                         "sharded": [many.coef_.tolist(),
                                     np.ravel(many.intercept_).tolist(),
                                     np.ravel(many.alpha_).tolist()]}
        # a second sharded fit of the same bucket (another split) compiles nothing
        model = cases["logistic_reverse_cv3"][0].set_params(random_state=1)
        before = len(compiles)
        with data_parallel():
            model.fit(X[:-5], y[:-5])
        out["recompiles"] = len(compiles) - before
    # a method that runs on the host is left on one device, with a warning
    folds = FitData.from_validated(X, y).folds([(np.arange(400), np.arange(400, 569))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with data_parallel():
            kept = placed_folds(folds, resolve_method("implicit"))
            sharded = placed_folds(folds, resolve_method("reverse"))
    out["host_warning"] = any("runs on the host" in str(w.message) for w in caught)
    out["host_kept"] = all(isinstance(part, np.ndarray) for part in kept.inner)
    # sparse rows are not sharded yet: one device, with a warning
    import scipy.sparse as sp

    sparse = FitData.from_validated(sp.csr_matrix(X), y).folds(
        [(np.arange(400), np.arange(400, 569))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with data_parallel():
            kept = placed_folds(sparse, resolve_method("reverse"))
    out["sparse_kept"] = (kept.inner is sparse.inner and any(
        "sparse rows are not sharded" in str(w.message) for w in caught))
    out["reverse_sharded_shape"] = list(sharded.inner[0].sharding.shard_shape(
        sharded.inner[0].shape))
    return out


def _cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _worker():
    import jax

    from skfarho.core import float64_scope

    assert len(jax.devices()) == N_DEVICES, jax.devices()
    with float64_scope():
        out = {"core": _core_checks(np.random.default_rng(0)),
               "estimators": _estimator_checks()}
    print("RESULT " + json.dumps(out))


@pytest.fixture(scope="module")
def four_devices():
    """The worker's numbers, from a process with 4 simulated CPU devices."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") +
                         f" --xla_force_host_platform_device_count={N_DEVICES}")}
    run = subprocess.run([sys.executable, __file__], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-5000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("name", ["reverse", "forward", "rtho", "trho", "implicit"])
def test_sharded_hypergradient_equals_single_device(four_devices, name):
    core = four_devices["core"]
    assert core["rows_per_device"] == 32 // N_DEVICES
    single, sharded = core[name]["grad"]
    np.testing.assert_allclose(sharded, single, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(*core[name]["value"], rtol=1e-10)
    assert np.linalg.norm(single) > 1e-3  # a hypergradient worth comparing


def test_sharded_hypergradient_matches_finite_differences(four_devices):
    core = four_devices["core"]
    fd, exact = core["reverse"]["fd"]
    np.testing.assert_allclose(exact, fd, rtol=1e-5, atol=1e-8)
    assert core["all_reduce_in_program"]  # partitioned by rows, not gathered


def test_sharded_outer_loop_equals_single_device(four_devices):
    single, sharded = four_devices["core"]["outer_loop"]
    np.testing.assert_allclose(sharded, single, atol=1e-6)


@pytest.mark.parametrize("name", ["logistic_reverse_cv3", "ridge_forward_3_devices"])
def test_data_parallel_fit_equals_single_device(four_devices, name):
    case = four_devices["estimators"][name]
    for single, sharded in zip(case["single"], case["sharded"], strict=True):
        np.testing.assert_allclose(sharded, single, rtol=1e-6, atol=1e-6)


def test_data_parallel_refit_does_not_recompile(four_devices):
    assert four_devices["estimators"]["recompiles"] == 0


def test_data_parallel_leaves_host_methods_on_one_device(four_devices):
    estimators = four_devices["estimators"]
    assert estimators["host_warning"] and estimators["host_kept"]
    assert estimators["sparse_kept"]
    # 400 training rows: a bucket of 448 (7 * 64), 112 per device
    assert estimators["reverse_sharded_shape"] == [1, 448 // N_DEVICES, 30]


def test_shard_rows_needs_a_multiple_of_the_devices():
    from skfarho.core.sharding import row_mesh, shard_rows

    mesh = row_mesh()
    placed = shard_rows({"X": np.ones((2, 8, 3)), "scale": np.float64(2.0)}, mesh)
    assert placed["X"].sharding.spec[1] == "rows"
    assert placed["scale"].sharding.is_fully_replicated
    if mesh.size > 1:
        with pytest.raises(ValueError, match="multiple of the number of devices"):
            shard_rows(np.ones((2, mesh.size + 1)), mesh)


def test_placement_is_a_no_op_outside_data_parallel():
    """Single-device fits see the host arrays they always saw."""
    from skfarho._data import FitData
    from skfarho._fit import placed_folds
    from skfarho._methods import resolve_method
    from skfarho.core.sharding import current_mesh, data_parallel, row_mesh

    X, y = _cancer()
    folds = FitData.from_validated(X, y).folds([(np.arange(400), np.arange(400, 569))])
    method = resolve_method("reverse")
    assert current_mesh() is None
    assert placed_folds(folds, method).inner is folds.inner
    with data_parallel([row_mesh().devices.flat[0]]):
        assert current_mesh().size == 1
        assert placed_folds(folds, method).outer is folds.outer  # one device: off
    assert current_mesh() is None


# ---- a Dask cluster ---------------------------------------------------------
def _count_cache_events(dask_worker):
    """On a worker: count persistent-cache hits and misses (compilations)."""
    import jax

    counts = dask_worker.skfarho_counts = {"cache_misses": 0, "cache_hits": 0}

    def on_event(event, **kwargs):
        name = event.rsplit("/", 1)[-1]
        if name in counts and event.startswith("/jax/compilation_cache/"):
            counts[name] += 1

    jax.monitoring.register_event_listener(on_event)


def _counts(dask_worker):
    return dict(dask_worker.skfarho_counts)


def _jax_globals(payload):
    """The modules of the classes and functions a pickle refers to."""
    modules, strings = set(), []
    for opcode, arg, _ in pickletools.genops(payload):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif opcode.name == "STACK_GLOBAL":
            modules.add(strings[-2])
        elif opcode.name == "GLOBAL":
            modules.add(arg.split(" ")[0])
    return {module for module in modules if module.split(".")[0] in ("jax", "jaxlib")}


@pytest.mark.no_x64
def test_dask_cross_validation_equals_loky(tmp_path):
    """cross_val_score and GridSearchCV on a 2-process Dask cluster give loky's
    scores; workers share a persistent compilation cache, so restarted workers
    load the programs instead of compiling them; a fitted estimator comes back
    without compiled state and unpickles in a fresh process."""
    distributed = pytest.importorskip("distributed")
    import cloudpickle
    from joblib import parallel_config
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, cross_val_score

    from skfarho import HOLogisticRegression

    X, y = _cancer()
    model = HOLogisticRegression(outer_steps=5, random_state=0)
    search = GridSearchCV(HOLogisticRegression(outer_steps=3, random_state=0),
                          {"outer_learning_rate": [0.1, 0.3]}, cv=2, n_jobs=2)
    with parallel_config(backend="loky"):
        loky_scores = cross_val_score(model, X, y, cv=3, n_jobs=2)
        loky_search = clone(search).fit(X, y)
    cache = tmp_path / "jax-cache"
    env = {"JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PLATFORMS": "cpu",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                      processes=True, dashboard_address=None,
                                      env=env) as cluster, \
                distributed.Client(cluster) as client:
            with parallel_config(backend="dask"):
                dask_scores = cross_val_score(model, X, y, cv=3, n_jobs=2)
                dask_search = clone(search).fit(X, y)
            fitted = client.submit(clone(model).fit, X, y).result()
            assert any(cache.iterdir())  # the workers wrote their programs
            client.restart()  # fresh processes: empty in-memory caches
            client.run(_count_cache_events)
            with parallel_config(backend="dask"):
                again = cross_val_score(model, X, y, cv=3, n_jobs=2)
            counts = client.run(_counts)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    np.testing.assert_allclose(dask_scores, loky_scores, rtol=1e-12)
    np.testing.assert_allclose(again, loky_scores, rtol=1e-12)
    np.testing.assert_allclose(dask_search.cv_results_["mean_test_score"],
                               loky_search.cv_results_["mean_test_score"],
                               rtol=1e-12)
    assert dask_search.best_params_ == loky_search.best_params_
    assert sum(count["cache_hits"] for count in counts.values()) > 0
    assert sum(count["cache_misses"] for count in counts.values()) == 0, counts
    # the fitted estimator: NumPy attributes only, usable in a fresh process
    payload = pickle.dumps(fitted)
    assert not _jax_globals(payload)
    path = tmp_path / "model.pkl"
    path.write_bytes(payload)
    code = ("import pickle, sys, numpy as np; "
            "model = pickle.load(open(sys.argv[1], 'rb')); "
            "np.save(sys.argv[2], model.predict_proba(np.load(sys.argv[3])))")
    np.save(tmp_path / "X.npy", X)
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "p.npy"),
                    str(tmp_path / "X.npy")], check=True, timeout=120,
                   env={**os.environ, "JAX_PLATFORMS": "cpu"})
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), fitted.predict_proba(X),
                               rtol=1e-12)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    _worker()
