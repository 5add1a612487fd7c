"""Configuration shared by the tests and the doctests."""

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each module.

    A full run compiles thousands of programs; kept alive in one process, their
    code mappings approach the kernel's limit of memory maps per process
    (``vm.max_map_count``, 65,530 here), and a late compilation in the suite then
    crashed inside XLA (SIGABRT / SIGSEGV, three fresh-clone runs, always in the
    last doctests), while every module alone passed.
    """
    yield
    jax.clear_caches()
