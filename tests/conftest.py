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


def pytest_configure(config):
    config.addinivalue_line("markers", "no_x64: run outside the float64 scope")
