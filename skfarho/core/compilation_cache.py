"""Opt-in persistent compilation cache: pay JAX's compilation once per machine."""

from __future__ import annotations

import os
from pathlib import Path

import jax


def enable_persistent_cache(path: str | os.PathLike | None = None) -> Path:
    """Turn on JAX's on-disk compilation cache, for this process and later ones.

    skfarho never changes JAX's global configuration by itself; this function
    does, because you call it. The first fit of each configuration and shape
    bucket still compiles (seconds); later processes load the compiled programs
    from disk instead (see ``benchmarks/README.md`` for measured figures). The
    same effect without code: set ``JAX_COMPILATION_CACHE_DIR`` in the
    environment before starting Python.

    Parameters
    ----------
    path : str or path-like, optional
        Cache directory; default ``$XDG_CACHE_HOME/skfarho/jax`` (or
        ``~/.cache/skfarho/jax``).

    Returns
    -------
    pathlib.Path
        The cache directory in use.
    """
    if path is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "skfarho" / "jax"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return path
