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


def pytest_configure(config):
    config.addinivalue_line("markers", "no_x64: run outside the float64 scope")
