"""A sparse matrix for the JAX core: a pytree of index and value arrays.

:class:`SparseMatrix` stores the non-zeros of an ``(n, d)`` matrix as
coordinates (a row and a column index per entry) and computes ``X @ v``,
``X @ V``, ``r @ X`` and ``X.T @ r`` by a gather and a scatter-add. It is a
registered pytree (the shape is static, the arrays are leaves), so it passes
through ``jit``, ``vmap`` and ``grad`` like an array: a model's
``X @ params["coef"]`` works unchanged, and the transposed product of every
gradient (``X.T @ r``) and the Hessian-vector products of the implicit
method come from JAX's rules (gather and scatter-add transpose into each
other). Memory and cost are ``O(nnz + n + d)``.

Why it is fast on XLA:CPU, measured on the tf-idf data of
``benchmarks/bench_sparse.py`` (float64, 2 shared cores, CPU-time minima;
12,000 x 60,000 with 720k stored entries and 48,000 x 240,000 with 2.9M):

- Entry order. :meth:`SparseMatrix.from_scipy` stores entries position
  major: the first entry of every row, then the second of every row, ...
  (rows ascending). A scatter-add is one read-modify-write per entry; in CSR
  order ``X @ v`` adds ~80 entries in a row into one output, each waiting for
  the previous. Each row still sums its entries in CSR order. ``X @ v``:
  5.0-6.0 -> 1.9-3.9 ns per entry. ``X.T @ r`` (a scatter into random
  columns) stays 2.3-3.7 ns; a sorted transposed (CSC) copy was slower
  (4.8-6.0 ns: the same chain of adds into one column), so none is kept.
- Chunks. A product runs as a ``lax.scan`` over chunks of up to ``2**16``
  entries (:func:`_chunk_size`), so that XLA allocates no ``nnz``-sized
  temporaries: at 2.9M entries the value-and-gradient had 37 MB of them,
  above glibc's 32 MB mmap threshold, so each call page-faulted ~9,000 pages
  (25 ms of system time).
- One loop per factor. The product's JVP is two products (it is bilinear in
  values and vector), so in the implicit method's conjugate gradient the
  primal ``X @ w`` is loop-invariant and hoisted, and a Hessian-vector
  product costs two products.
- Indices are promised in bounds (``GatherScatterMode.PROMISE_IN_BOUNDS``):
  no clamping pass.

Value and gradient: 7.7-9.1 -> 3.0-6.5 ms (12k) and 58-71 -> 18-19 ms (48k),
now linear in the entries; a Hessian-vector product inside a loop 6.1 -> 3.9
ms and 27-28 -> 18-19 ms.

Several matrices of the same shape and number of stored entries stack into
one with a leading axis on every array (:meth:`SparseMatrix.stack`): CV folds
as row subsets, each padded to a common size. ``vmap`` maps over that axis;
``matrix[i]`` is the ``i``-th matrix. Padding entries are zeros spread over
rows and columns (the ``i``-th at row ``i % n``, column ``i % d``, after the
stored entries): no product changes, and no chain of adds into one output.

Why not ``jax.experimental.sparse``: at 12,000 x 60,000 ``BCSR @ v`` took 7.3
ms and ``BCSR.T @ r`` is not implemented under ``jit``; ``BCOO @ v`` 4.8 ms.
A SciPy product through ``jax.pure_callback`` costs 4.2 ms (the callback
copies its arguments), against 0.8 ms for SciPy itself.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

_IN_BOUNDS = lax.GatherScatterMode.PROMISE_IN_BOUNDS
_CHUNK, _MIN_CHUNK = 2**16, 2**12  # entries per step of a product (see the module)


@jax.tree_util.register_pytree_node_class
class SparseMatrix:
    """An ``(n, d)`` sparse matrix as coordinates, usable under JAX.

    Parameters
    ----------
    data : array of shape (nnz,)
        Stored values (padding entries are zero).
    row, col : int32 array of shape (nnz,)
        Row and column of each stored value, in ``[0, n)`` and ``[0, d)``
        (not checked: the products promise their indices in bounds). Any
        order; :meth:`from_scipy` chooses the fastest (see the module).
    shape : tuple of int
        ``(n, d)``.
    rows_sorted : bool, default=True
        True when ``row`` is non-decreasing (the scatter-add of ``X @ v`` is
        then flagged sorted); :meth:`from_scipy` and :attr:`T` clear it.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]))
    >>> A = SparseMatrix.from_scipy(X, nnz=4)  # one padding entry
    >>> np.asarray(A @ np.ones(3)).tolist()
    [3.0, 3.0]
    >>> np.asarray(np.ones(2) @ A).tolist()  # X^T 1
    [1.0, 3.0, 2.0]
    >>> A.T.shape, float(A.to_scipy().sum())
    ((3, 2), 6.0)
    """

    __array_ufunc__ = None  # NumPy's ``r @ X`` defers to __rmatmul__

    def __init__(self, data, row, col, shape, rows_sorted=True):
        self.data, self.row, self.col = data, row, col
        self.shape = tuple(int(s) for s in shape)
        self.rows_sorted = bool(rows_sorted)

    # ---- pytree -------------------------------------------------------------
    def tree_flatten(self):
        return (self.data, self.row, self.col), (self.shape, self.rows_sorted)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)

    # ---- construction -------------------------------------------------------
    @classmethod
    def from_scipy(cls, matrix, shape=None, nnz=None, dtype=np.float64):
        """A SciPy sparse matrix (any format), padded to ``shape`` and ``nnz``.

        Parameters
        ----------
        matrix : scipy.sparse matrix or array of shape (n, d)
        shape : tuple of int, optional
            ``(n_rows, d)`` with ``n_rows >= n``: empty rows are appended.
        nnz : int, optional
            Stored entries, at least ``matrix.nnz``: zero entries are appended.
        dtype : numpy dtype, default=float64

        Returns
        -------
        SparseMatrix
            With NumPy arrays (put on a device by ``jit`` or ``device_put``).
        """
        csr = matrix.tocsr()
        shape = csr.shape if shape is None else tuple(shape)
        if shape[0] < csr.shape[0] or shape[1] != csr.shape[1]:
            raise ValueError(f"Cannot pad a {csr.shape} matrix to {shape}.")
        nnz = csr.nnz if nnz is None else int(nnz)
        if nnz < csr.nnz:
            raise ValueError(f"nnz={nnz} is below the {csr.nnz} stored entries.")
        if nnz and 0 in shape:
            raise ValueError(f"A {shape} matrix holds no entries, got nnz={nnz}.")
        order, row = _position_major(csr.indptr)
        padding = np.arange(nnz - csr.nnz)
        data = np.zeros(nnz, dtype)
        data[: csr.nnz] = csr.data[order]
        row = np.concatenate([row, padding % shape[0]]).astype(np.int32)
        col = np.concatenate([csr.indices[order], padding % shape[1]])
        return cls(data, row, col.astype(np.int32), shape, rows_sorted=False)

    @classmethod
    def stack(cls, matrices):
        """One matrix whose arrays carry a leading axis over ``matrices`` (same
        shape and number of stored entries); ``vmap`` maps over it."""
        first = matrices[0]
        if any(m.shape != first.shape or m.data.shape != first.data.shape
               or m.rows_sorted != first.rows_sorted for m in matrices):
            raise ValueError("Stacked sparse matrices need the same shape and nnz.")
        arrays = [np.stack([np.asarray(getattr(m, name)) for m in matrices])
                  for name in ("data", "row", "col")]
        return cls(*arrays, first.shape, first.rows_sorted)

    def __getitem__(self, index):
        """The ``index``-th matrix of a stack (see :meth:`stack`)."""
        return type(self)(*(leaf[index] for leaf in self.tree_flatten()[0]),
                          self.shape, self.rows_sorted)

    def to_scipy(self):
        """The matrix as a SciPy CSR matrix (host; duplicates summed, zeros
        dropped)."""
        import scipy.sparse

        data, row, col = (np.asarray(a) for a in (self.data, self.row, self.col))
        matrix = scipy.sparse.csr_matrix((data, (row, col)), shape=self.shape)
        matrix.eliminate_zeros()  # the padding
        return matrix

    # ---- array protocol -----------------------------------------------------
    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return 2

    @property
    def nnz(self) -> int:
        """Stored entries, padding included."""
        return int(self.data.shape[-1])

    @property
    def T(self):  # noqa: N802
        """The transpose (no copy: row and column swapped)."""
        return type(self)(self.data, self.col, self.row, self.shape[::-1], False)

    def __matmul__(self, other):
        """``X @ v`` (``(d,)`` to ``(n,)``) or ``X @ V`` (``(d, k)`` to ``(n, k)``)."""
        other = jnp.asarray(other)
        if other.shape[0] != self.shape[1] or other.ndim > 2:
            raise ValueError(f"Cannot multiply a {self.shape} sparse matrix by an "
                             f"array of shape {other.shape}.")
        return _gather_add(self.data.astype(other.dtype), self.row, self.col, other,
                           self.shape[0], self.rows_sorted)

    def __rmatmul__(self, other):
        """``r @ X`` (``(n,)`` to ``(d,)``) or ``R @ X`` (``(k, n)`` to ``(k, d)``)."""
        other = jnp.asarray(other)
        return self.T @ other if other.ndim == 1 else (self.T @ other.T).T

    def __repr__(self):
        batch = np.shape(self.data)[:-1]
        stacked = f", stacked {batch}" if batch else ""
        return f"SparseMatrix(shape={self.shape}, nnz={self.nnz}{stacked})"


def _chunk_size(nnz: int) -> int | None:
    """The entries of one step of the chunked product: the largest power of two
    dividing ``nnz``, at most ``2**16``; None (one step) when below ``2**12``
    or when it is all of ``nnz``."""
    chunk = min(nnz & -nnz, _CHUNK)
    return chunk if _MIN_CHUNK <= chunk < nnz else None


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _gather_add(data, row, col, other, num_rows, rows_sorted):
    """``out[row[e]] += data[e] * other[col[e]]`` over the stored entries ``e``,
    in entry order, by chunks of :func:`_chunk_size` entries (a ``lax.scan``
    adding into one output).

    Its JVP is two calls of itself (the product is bilinear in ``data`` and
    ``other``), so that the primal and tangent products stay separate loops:
    in the implicit method's conjugate gradient the primal ``X @ w`` is then
    loop-invariant and hoisted out of it.
    """
    def add(out, entries):
        values, rows, cols = entries
        taken = lax.gather(other, cols, _dimensions(other.ndim), (1, *other.shape[1:]),
                           mode=_IN_BOUNDS)
        products = values * taken if other.ndim == 1 else values[:, None] * taken
        return lax.scatter_add(out, rows, products, _scatter_dimensions(other.ndim),
                               indices_are_sorted=rows_sorted, mode=_IN_BOUNDS), None

    # indices as (entries, 1) before the loop: nothing is computed from them in
    # its body, so differentiating the loop keeps no per-step copy of them
    row, col = row[..., None], col[..., None]
    out = jnp.zeros((num_rows, *other.shape[1:]), other.dtype)
    chunk = _chunk_size(data.shape[-1])
    if chunk is None:
        return add(out, (data, row, col))[0]
    chunks = tuple(a.reshape(-1, chunk, *a.shape[1:]) for a in (data, row, col))
    return lax.scan(add, out, chunks)[0]


def _gather_add_jvp(num_rows, rows_sorted, primals, tangents):
    data, row, col, other = primals
    data_dot, _, _, other_dot = tangents
    out = _gather_add(data, row, col, other, num_rows, rows_sorted)
    tangent = jnp.zeros_like(out)
    if not isinstance(other_dot, SymbolicZero):
        tangent = _gather_add(data, row, col, other_dot, num_rows, rows_sorted)
    if not isinstance(data_dot, SymbolicZero):
        tangent += _gather_add(data_dot, row, col, other, num_rows, rows_sorted)
    return out, tangent


_gather_add.defjvp(_gather_add_jvp, symbolic_zeros=True)


def _dimensions(ndim):
    """Gather of whole rows of an ``ndim``-dimensional array by ``(m, 1)`` indices."""
    return lax.GatherDimensionNumbers(offset_dims=tuple(range(1, ndim)),
                                      collapsed_slice_dims=(0,), start_index_map=(0,))


def _scatter_dimensions(ndim):
    """The scatter transposing :func:`_dimensions`."""
    return lax.ScatterDimensionNumbers(update_window_dims=tuple(range(1, ndim)),
                                       inserted_window_dims=(0,),
                                       scatter_dims_to_operand_dims=(0,))


def _position_major(indptr):
    """The permutation of CSR entries to position-major order (the ``k``-th
    entry of every row for ``k = 0, 1, ...``, rows ascending), and the row of
    each permuted entry."""
    lengths = np.diff(indptr)
    row = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    position = np.arange(indptr[-1]) - np.repeat(indptr[:-1], lengths)
    small = lengths.max(initial=0) < np.iinfo(np.int16).max
    # a stable sort keeps rows ascending within a position (radix on int16)
    order = np.argsort(position.astype(np.int16 if small else np.int64),
                       kind="stable")
    return order, row[order]


def is_sparse(X) -> bool:
    """True for a :class:`SparseMatrix` or a SciPy sparse matrix or array.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> is_sparse(sp.eye(2)), is_sparse(np.eye(2))
    (True, False)
    """
    if isinstance(X, SparseMatrix):
        return True
    import scipy.sparse

    return scipy.sparse.issparse(X)
