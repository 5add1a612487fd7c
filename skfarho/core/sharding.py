"""Rows across devices: one inner problem sharded over every device of a machine.

The traced hypergradient methods (:class:`Reverse`, :class:`Forward`,
:class:`RTHO`, :class:`TRHO`, :class:`Implicit` with a JAX linear solver) are
``jit``-compiled functions of their data, and ``jit`` runs where its inputs live:
give it rows split across devices (``NamedSharding(mesh, P(None, "rows"))``)
and replicated coefficients, and the compiler partitions every loss, gradient
and Hessian-vector product by rows, with one all-reduce per sum over rows. No
method changes; :func:`shard_rows` only places the data.

The estimators shard their folds when a fit runs inside :func:`data_parallel`
(an opt-in, as JAX itself never spreads a computation over devices unasked)::

    with data_parallel():  # every device
        HOLogisticRegression(hypergradient="reverse").fit(X, y)

Across hosts, call ``jax.distributed.initialize()`` first and run the same fit
on the same data in every process: the default mesh then holds every device of
every process, and each process places only its own shards.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any

ROWS = "rows"
"""The mesh axis name of :func:`row_mesh`."""

_MESH: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar(
    "skfarho_data_parallel_mesh", default=None)


def row_mesh(devices: Sequence | None = None) -> Mesh:
    """A one-dimensional mesh named ``"rows"`` over ``devices``.

    Parameters
    ----------
    devices : sequence of jax.Device, optional
        Default ``jax.devices()``: every device of the default backend, in
        every process after ``jax.distributed.initialize()``.

    Returns
    -------
    jax.sharding.Mesh
        Equal devices give equal meshes, hence the same compiled programs.

    Examples
    --------
    >>> import jax
    >>> mesh = row_mesh()
    >>> mesh.axis_names, mesh.size == len(jax.devices())
    (('rows',), True)
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("row_mesh needs at least one device.")
    return Mesh(np.array(devices), (ROWS,))


def shard_rows(tree: PyTree, mesh: Mesh, axis: int = 1) -> PyTree:
    """Place every array of ``tree`` with its ``axis`` split across ``mesh``.

    Arrays with ``axis`` or fewer dimensions are replicated, and so is every
    other dimension: with the default ``axis=1``, stacked folds of shape
    ``(folds, rows, ...)`` keep each fold's rows split over the devices. A
    ``jit``-compiled function of the result runs on all of them; the
    coefficients and hyperparameters it receives as host arrays are
    replicated. Works across hosts: every process passes the same full
    arrays, and places only the shards of its own devices.

    Parameters
    ----------
    tree : PyTree of array-like
        The data (leaves that are not arrays, such as None, are kept).
    mesh : jax.sharding.Mesh
        The devices; the rows are split over all its axes (see
        :func:`row_mesh`).
    axis : int, default=1
        The row axis.

    Returns
    -------
    PyTree of jax.Array
        ``tree`` with its arrays placed.

    Raises
    ------
    ValueError
        When a row count is not a multiple of the number of devices (pad the
        rows first, with weight zero).

    Examples
    --------
    >>> import numpy as np
    >>> folds = (np.ones((3, 16, 5)), np.zeros((3, 16)))
    >>> X, y = shard_rows(folds, row_mesh())
    >>> X.shape, X.sharding.spec[1]
    ((3, 16, 5), 'rows')
    """
    names = mesh.axis_names
    rows = names[0] if len(names) == 1 else names
    split = NamedSharding(mesh, PartitionSpec(*([None] * axis), rows))
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(leaf):
        if not hasattr(leaf, "shape"):
            return leaf
        host = np.asarray(leaf)
        if host.ndim <= axis:
            return _put(host, replicated)
        if host.shape[axis] % mesh.size:
            raise ValueError(
                f"Cannot split {host.shape[axis]} rows (axis {axis} of an array of "
                f"shape {host.shape}) over {mesh.size} devices: pad the rows to a "
                "multiple of the number of devices, with weight zero.")
        return _put(host, split)

    return jax.tree_util.tree_map(place, tree)


def _put(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    # each process fills only its own devices' shards (multi-host safe)
    return jax.make_array_from_callback(host.shape, sharding,
                                        lambda index: host[index])


@contextlib.contextmanager
def data_parallel(devices: Sequence | Mesh | None = None) -> Iterator[Mesh]:
    """Shard the rows of the estimators' fits across devices, inside the block.

    Every ``fit`` of a skfarho estimator run in the block (in this thread)
    with a traced hypergradient method (``"reverse"``, ``"forward"``,
    ``"rtho"``, ``"trho"``, and ``"implicit"`` on an accelerator) places its
    folds with :func:`shard_rows`: the rows are split across the devices and
    the coefficients replicated. The model is the one a single device fits,
    up to the order of floating-point sums. A fit whose method runs on the
    host (``"implicit"`` on CPU) is left on one device.

    Parameters
    ----------
    devices : sequence of jax.Device or jax.sharding.Mesh, optional
        Default every device (``jax.devices()``). One device turns sharding
        off.

    Yields
    ------
    jax.sharding.Mesh
        The mesh in use.

    Examples
    --------
    >>> with data_parallel() as mesh:
    ...     current_mesh() is mesh
    True
    >>> current_mesh() is None
    True
    """
    mesh = devices if isinstance(devices, Mesh) else row_mesh(devices)
    token = _MESH.set(mesh)
    try:
        yield mesh
    finally:
        _MESH.reset(token)


def current_mesh() -> Mesh | None:
    """The mesh of the innermost :func:`data_parallel` block, or None.

    Examples
    --------
    >>> current_mesh() is None
    True
    """
    return _MESH.get()
