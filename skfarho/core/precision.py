"""Scoped float64: the library never flips the user's global JAX config."""

from __future__ import annotations

import contextlib

import jax


@contextlib.contextmanager
def float64_scope(enabled: bool = True):
    """Run JAX in float64 inside the ``with`` block only.

    Thread-local and restored on exit, whatever ``jax_enable_x64`` was before.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> with float64_scope():
    ...     print(jnp.ones(1).dtype)
    float64
    """
    with jax.enable_x64(enabled):
        yield
