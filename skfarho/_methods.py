"""The estimators' algorithm choices: hypergradient methods and outer optimizers,
by name or as objects, resolved once per fit and cached (so compiled programs are
reused across fits)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from skfarho.core import (
    CG,
    RTHO,
    TRHO,
    Batched,
    Forward,
    HostImplicit,
    Implicit,
    Reverse,
    rprop_secant,
)

METHOD_NAMES = ("implicit", "reverse", "forward", "rtho", "trho")
OUTER_OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd, "rmsprop": optax.rmsprop,
                    "rprop": optax.rprop, "rprop_secant": rprop_secant}


def _implicit_method():
    """HostImplicit on CPU, the traced Implicit on accelerators.

    Measured with ``benchmarks/bench_host_vs_traced.py``: on CPU, compiling the
    traced program dominates a fit (first fit 9.8 s against 4.2 s on the
    500-feature problem); on an H200 GPU the host round trips dominate (warm
    digits fit 0.33 s host against 0.13 s traced), while both compile in a few
    seconds.
    """
    if jax.default_backend() == "cpu":
        return HostImplicit(max_inner_iter=2000)
    return Implicit(CG(maxiter=200), max_inner_iter=2000)


@functools.lru_cache(maxsize=32)
def _named_method(name: str, hyper_interval: int):
    return {"implicit": _implicit_method, "reverse": Reverse, "forward": Forward,
            "rtho": lambda: RTHO(hyper_interval),
            "trho": lambda: TRHO(hyper_interval)}[name]()


def resolve_method(hypergradient, hyper_interval: int = 10):
    """The hypergradient method, batched over folds (a holdout is one fold).

    ``hypergradient`` is a name of :data:`METHOD_NAMES` or any method object of
    the core (``Reverse(truncate=20)``, ``Implicit(Cholesky())``, ...).
    """
    if isinstance(hypergradient, str):
        method = _named_method(hypergradient, hyper_interval)
    else:
        method = hypergradient
    return method if isinstance(method, Batched) else Batched(method)


def is_implicit(method) -> bool:
    """True for the implicit method (it differentiates the exact minimizer)."""
    return isinstance(getattr(method, "method", method), Implicit)


def is_online(method) -> bool:
    """True for the online methods (their state runs across outer steps)."""
    return isinstance(getattr(method, "method", method), RTHO | TRHO)


@functools.lru_cache(maxsize=32)
def _named_optimizer(name: str):
    # cached, with the step size in the optimizer state (inject_hyperparams): the
    # same object for every fit and step size, so the compiled step is reused
    return optax.inject_hyperparams(OUTER_OPTIMIZERS[name])(learning_rate=0.1)


def optimizer_name(spec, learned: dict):
    """The name ``spec`` resolves to for ``learned`` (``"auto"`` resolved);
    None for an optax object."""
    if not isinstance(spec, str):
        return None
    if spec != "auto":
        return spec
    leaves = jax.tree_util.tree_leaves(learned)
    scalars = all(np.ndim(leaf) == 0 for leaf in leaves)
    return ("rprop_secant" if len(leaves) == 1 and scalars else
            "rprop" if scalars else "adam")


def outer_optimizer(spec, learning_rate: float, learned: dict):
    """The outer optimizer and its initial state.

    ``spec`` is a name, ``"auto"`` or an ``optax.GradientTransformation``.
    ``"auto"``: for one scalar hyperparameter (``learn="alpha"``),
    :func:`~skfarho.core.rprop_secant`: its step grows while the
    hypergradient's sign holds (crossing orders of magnitude of ``alpha`` in a
    few steps), then secant steps inside the bracket. For several scalars,
    ``optax.rprop``: sign-based steps per entry, which tolerate coupled
    entries (a per-entry secant does not: its bracket goes stale when another
    entry moves). For vectors of hyperparameters (one per feature or per
    example), Adam: rprop's steps grow without regard to the gradient's size
    and drive weakly determined entries to extremes.

    A named optimizer's state is built by an optimizer of the same structure
    initialized with ``learning_rate`` (rprop keeps its initial step sizes in its
    state), so the cached optimizer, whose update reads the step size from the
    state, is reused.
    """
    if not isinstance(spec, str):
        return spec, spec.init(learned)
    name = optimizer_name(spec, learned)
    dtype = jax.dtypes.canonicalize_dtype(
        np.result_type(jax.tree_util.tree_leaves(learned)[0]))
    state = optax.inject_hyperparams(OUTER_OPTIMIZERS[name])(
        learning_rate=jnp.asarray(learning_rate, dtype)).init(learned)
    return _named_optimizer(name), state
