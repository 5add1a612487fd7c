"""Precision: scoped float64 (the library never flips the user's global JAX
config), and casts of pytrees' floating-point leaves."""

from __future__ import annotations

import contextlib

import jax
import numpy as np


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


def floats_as(dtype, tree):
    """``tree`` with its floating-point leaves as NumPy arrays of ``dtype``
    (integer leaves unchanged; ``tree`` itself for ``dtype=None``). A leaf
    already of ``dtype`` (NumPy or JAX) is returned as it is.

    Examples
    --------
    >>> import numpy as np
    >>> cast = floats_as(np.float32, {"x": np.ones(2), "index": np.arange(2)})
    >>> cast["x"].dtype, cast["index"].dtype
    (dtype('float32'), dtype('int64'))
    """
    if dtype is None:
        return tree
    dtype = np.dtype(dtype)
    return jax.tree_util.tree_map(
        lambda leaf: (np.asarray(leaf, dtype)
                      if is_floating(leaf) and getattr(leaf, "dtype", None) != dtype
                      else leaf), tree)


def is_floating(leaf) -> bool:
    """Whether an array (NumPy or JAX) or scalar holds floating-point numbers."""
    return np.issubdtype(np.dtype(getattr(leaf, "dtype", type(leaf))), np.floating)
