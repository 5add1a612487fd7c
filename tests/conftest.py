"""Test configuration: float64 through a scoped context, a seeded generator."""

import jax
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _float64_for_core(request):
    """Core tests run in float64 (scoped, thread-local); estimator tests opt out."""
    if request.node.get_closest_marker("no_x64") is not None:
        yield
        return
    with jax.enable_x64(True):
        yield


@pytest.fixture
def rng():
    """A seeded NumPy generator: tests are deterministic."""
    return np.random.default_rng(0)


_COMPILES = []


def _count_compile(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        _COMPILES.append(duration)


jax.monitoring.register_event_duration_secs_listener(_count_compile)


@pytest.fixture
def compile_counter():
    """A function returning how many XLA compilations happened so far."""
    return lambda: len(_COMPILES)


@pytest.fixture
def host_program_dtypes(monkeypatch):
    """A list that gets, for every call of a host implicit program, the sets of
    floating dtypes of its arguments and of its results."""
    from skfarho.core import host_implicit
    from skfarho.core.precision import is_floating

    seen = []
    original = host_implicit.host_programs

    def dtypes(tree):
        return {np.dtype(leaf.dtype) for leaf in jax.tree_util.tree_leaves(tree)
                if hasattr(leaf, "dtype") and is_floating(leaf)}

    def recording(*args, **kwargs):
        def wrapped(program):
            def call(*arguments):
                results = program(*arguments)
                seen.append((dtypes(arguments), dtypes(results)))
                return results
            return call
        return {name: wrapped(program)
                for name, program in original(*args, **kwargs).items()}

    monkeypatch.setattr(host_implicit, "host_programs", recording)
    return seen


def pytest_configure(config):
    config.addinivalue_line("markers", "no_x64: run outside the float64 scope")
