"""Compile jitted programs ahead of their first call, off the critical path.

A first fit in a fresh process spends most of its time in XLA compiling a few
programs. The host-side implicit method (``Implicit(inner_solver="scipy")``)
knows, before its first inner solve, every program it will call after it: it
asks for them here, and they compile on worker threads (or on the waiting
thread) while SciPy's L-BFGS-B runs on the host.

- :func:`compile_in_background`: compile now, on a worker thread;
- :func:`compile_when_idle`: compile on the next thread that would otherwise
  wait (:func:`wait_compiled`), for programs needed later (the outer update,
  the final fit) that must not delay those needed first;
- :func:`compiler_options`: the XLA options of these small host-side programs,
  by the work of one call (:func:`work_of`): a program that does little per
  call is compiled quickly rather than well.

Compiling is ``program.lower(*args).compile()`` under the caller's float64
scope: it fills ``program``'s own cache, so the later call with any values of
those shapes and dtypes does not compile. Nothing runs.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools

import jax
import numpy as np
import optax

__all__ = ["FAST_COMPILE", "QUICK_COMPILE", "QUICK_WORK", "compile_in_background",
           "compile_when_idle", "compiler_options", "wait_compiled", "work_of"]

# XLA:CPU options for the host-side programs, chosen by measurement (the fits of
# benchmarks/bench_vs_search.py, 2 cores). LLVM level 2 and one code-generation
# split compiled in about the default time and ran warm fits 20-25% faster than
# the defaults. XLA's newer fusion emitters off (the older, direct LLVM
# emission): every program compiled 1.5-2.5x faster at level 0 (wine's 5-fold
# programs 1.01 -> 0.42 s, breast_cancer's 0.85 -> 0.37 s) and 5-40% faster at
# level 2 (the 500-feature problem 1.39 -> 0.87 s, binary_digits 1.24 -> 0.75 s),
# for the same warm fits. Options this XLA does not know are left out.
FAST_COMPILE = {"xla_backend_optimization_level": 2,
                "xla_cpu_parallel_codegen_split_count": 1,
                "xla_cpu_use_fusion_emitters": False}

# ... and for programs that do little work per call (QUICK_WORK), LLVM level 0:
# wine's programs compiled in 0.42 s instead of 0.9 s at level 2, breast_cancer's
# in 0.37 s, for warm fits 0.01-0.03 s slower; binary_digits' (1,280 rows x 65
# parameters a fold) ran 0.1 s slower a fit, digits' and the 500-feature
# problem's 0.3-0.5 s slower: those keep FAST_COMPILE.
QUICK_COMPILE = {"xla_backend_optimization_level": 0,
                 "xla_cpu_use_fusion_emitters": False}
QUICK_WORK = 2e5
"""Rows times parameters of one call (all problems of a batch) up to which a
host-side program is compiled with :data:`QUICK_COMPILE`."""

_BACKGROUND = concurrent.futures.ThreadPoolExecutor(
    max_workers=2, thread_name_prefix="skfarho-compile")
_COMPILING: dict = {}  # signature -> future, the most recent _MAX_COMPILING
_MAX_COMPILING = 256
_DEFERRED: collections.deque = collections.deque()  # (signature, future, run)
_MAX_DEFERRED = 8


def compiler_options(work=None):
    """XLA options of a host-side program doing ``work`` per call, on CPU.

    :data:`QUICK_COMPILE` when ``work`` (see :func:`work_of`) is at most
    :data:`QUICK_WORK`, else (or when unknown) :data:`FAST_COMPILE`; None (the
    backend's defaults) on accelerators.
    """
    if jax.default_backend() != "cpu":
        return None
    quick = work is not None and work <= QUICK_WORK
    return _known(tuple((QUICK_COMPILE if quick else FAST_COMPILE).items()))


@functools.cache
def _known(options) -> dict:
    """``options`` less those this XLA rejects (one empty program compiled per
    set, and one per option if the set is rejected)."""

    def accepted(chosen):
        try:
            jax.jit(lambda: 0, compiler_options=dict(chosen)).lower().compile()
        except Exception:  # e.g. "No such compile option" from an older XLA
            return False
        return True

    if accepted(options):
        return dict(options)
    return {name: value for name, value in options if accepted(((name, value),))}


def work_of(params, data) -> float | None:
    """Rows times parameters: the multiply-adds of a pass of a linear model.

    ``params`` are one problem's parameters (a pytree); rows are the leading
    extents (all but the last axis) of the largest array of ``data``, a batch's
    problems included. None when that array has one axis (sparse data's
    entries: compile those programs well).

    Examples
    --------
    >>> import numpy as np
    >>> work_of({"w": np.zeros(13), "b": np.zeros(())}, (np.zeros((5, 112, 13)),))
    7840.0
    """
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        return None
    largest = max(leaves, key=np.size)
    if np.ndim(largest) < 2:
        return None
    return float(np.prod(np.shape(largest)[:-1])) * optax.tree.size(params)


def compile_in_background(program, args) -> concurrent.futures.Future:
    """Compile the jitted ``program`` for ``args``'s shapes on a worker thread.

    Returns a future that is done when ``program(*args)`` (any values of those
    shapes and dtypes) no longer compiles. The first request for a signature
    submits the work; later requests return the same future.

    Examples
    --------
    >>> import concurrent.futures, jax, jax.numpy as jnp
    >>> program = jax.jit(lambda x: jnp.sin(x) @ x)
    >>> future = compile_in_background(program, (jnp.ones((3, 3)),))
    >>> _ = concurrent.futures.wait([future])
    >>> program(jnp.zeros((3, 3))).shape  # no compilation left
    (3, 3)
    """
    return _request(program, args, lambda signature, work: _BACKGROUND.submit(work))


def compile_when_idle(program, args) -> concurrent.futures.Future:
    """Like :func:`compile_in_background`, but queued for the next idle wait.

    The compilation runs on the thread that next calls :func:`wait_compiled`
    while the program it waits for is still compiling (the host-side implicit
    method waits so for its programs at the first outer step): work for a core
    that would otherwise idle, without delaying the programs on the critical
    path. If no wait comes, ``program`` compiles when first called, as usual:
    requests still queued when a wait finds nothing to wait for are dropped
    (cancelled and forgotten, so that a later request queues them again). The
    latest request runs first; at most 8 are kept.

    Examples
    --------
    >>> import concurrent.futures, jax, jax.numpy as jnp
    >>> later = compile_when_idle(jax.jit(jnp.cos), (jnp.ones(2),))
    >>> compiled = concurrent.futures.Future()
    >>> compiled.set_result(None)
    >>> wait_compiled(compiled)  # nothing to wait for: the queue is dropped
    >>> later.cancelled()
    True
    """
    return _request(program, args, _defer)


def wait_compiled(future: concurrent.futures.Future) -> None:
    """Wait for ``future``, running :func:`compile_when_idle`'s queue meanwhile.

    When ``future`` is already done (nothing to wait for: a warm process), the
    queued requests are dropped, so that none keeps its arguments alive; their
    programs compile when first called.
    """
    while not future.done() and _DEFERRED:
        _, _, run = _DEFERRED.pop()  # the latest request first
        run()
    while _DEFERRED:
        _drop(*_DEFERRED.pop()[:2])
    concurrent.futures.wait([future])


def _request(program, args, start):
    leaves, treedef = jax.tree_util.tree_flatten(args)
    signature = (program, treedef, tuple(
        (np.shape(leaf), getattr(leaf, "dtype", type(leaf))) for leaf in leaves))
    future = _COMPILING.get(signature)
    if future is None:
        x64 = bool(jax.config.jax_enable_x64)

        def compile_program():
            with jax.enable_x64(x64):
                program.lower(*args).compile()

        future = _COMPILING.setdefault(signature, start(signature, compile_program))
        while len(_COMPILING) > _MAX_COMPILING:  # forget the oldest (insertion order)
            _COMPILING.pop(next(iter(_COMPILING)))
    return future


def _defer(signature, work) -> concurrent.futures.Future:
    future = concurrent.futures.Future()

    def run():
        if future.set_running_or_notify_cancel():
            try:
                work()
            except Exception as error:  # the program compiles when called
                future.set_exception(error)
            else:
                future.set_result(None)

    _DEFERRED.append((signature, future, run))
    while len(_DEFERRED) > _MAX_DEFERRED:  # drop the oldest request
        _drop(*_DEFERRED.popleft()[:2])
    return future


def _drop(signature, future):
    """Cancel a queued request and forget it, so a later one queues afresh."""
    future.cancel()
    if _COMPILING.get(signature) is future:
        del _COMPILING[signature]
