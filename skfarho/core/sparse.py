"""A sparse matrix for the JAX core: a pytree of index and value arrays.

:class:`SparseMatrix` stores the non-zeros of an ``(n, d)`` matrix sorted by
row (CSR order, with the row pointers expanded to one row index per entry)
and computes ``X @ v``, ``X @ V``, ``r @ X`` and ``X.T @ r`` with a gather and
a :func:`jax.ops.segment_sum`. It is a registered pytree (the shape is static,
the arrays are leaves), so it passes through ``jit``, ``vmap`` and ``grad``
like an array: a model's ``X @ params["coef"]`` works unchanged, and the
transposed product of every gradient (``X.T @ r``), the Hessian-vector
products of the implicit method and the second-order terms come from JAX's
own rules (gather and scatter-add transpose into each other). Memory and
cost are ``O(nnz + n + d)``.

Several matrices of the same shape and number of stored entries stack into
one with a leading axis on every array (:meth:`SparseMatrix.stack`): CV folds
as row subsets, each padded to a common size. ``vmap`` maps over that axis;
``matrix[i]`` is the ``i``-th matrix.

Padding entries hold a zero value (row ``n - 1``, column 0), so rows and
stored entries can be padded to shape buckets without changing any product.

Why not ``jax.experimental.sparse``: measured on a 12,000 x 60,000 matrix with
780k non-zeros (float64, XLA:CPU, ``benchmarks/bench_sparse.py`` records the
numbers), ``BCSR @ v`` took 7.3 ms and ``BCSR.T @ r`` is not implemented
(NotImplementedError under ``jit``); ``BCOO @ v`` 4.8 ms; the gather and
sorted segment sum here 3.9 ms, with ``X.T @ r`` by scatter-add 3.9 ms and
by a sorted transposed copy 3.5 ms (not worth twice the memory). A SciPy
product through ``jax.pure_callback`` costs 4.2 ms (the callback copies its
arguments), against 0.8 ms for SciPy itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.tree_util.register_pytree_node_class
class SparseMatrix:
    """An ``(n, d)`` sparse matrix as row-sorted coordinates, usable under JAX.

    Parameters
    ----------
    data : array of shape (nnz,)
        Stored values (padding entries are zero).
    row, col : int32 array of shape (nnz,)
        Row and column of each stored value.
    shape : tuple of int
        ``(n, d)``.
    rows_sorted : bool, default=True
        True when ``row`` is non-decreasing (the segment sum of ``X @ v`` is
        then a sorted one); :attr:`T` swaps ``row`` and ``col`` and clears it.

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
        data = np.zeros(nnz, dtype)
        row = np.full(nnz, max(shape[0] - 1, 0), np.int32)
        col = np.zeros(nnz, np.int32)
        data[: csr.nnz] = csr.data
        row[: csr.nnz] = np.repeat(np.arange(csr.shape[0], dtype=np.int32),
                                   np.diff(csr.indptr))
        col[: csr.nnz] = csr.indices
        return cls(data, row, col, shape)

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
        """The matrix as a SciPy CSR matrix (host; duplicates summed)."""
        import scipy.sparse

        data, row, col = (np.asarray(a) for a in (self.data, self.row, self.col))
        return scipy.sparse.csr_matrix((data, (row, col)), shape=self.shape)

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
        data = self.data.astype(other.dtype)
        taken = other[self.col]
        products = data * taken if other.ndim == 1 else data[:, None] * taken
        return jax.ops.segment_sum(products, self.row, num_segments=self.shape[0],
                                   indices_are_sorted=self.rows_sorted)

    def __rmatmul__(self, other):
        """``r @ X`` (``(n,)`` to ``(d,)``) or ``R @ X`` (``(k, n)`` to ``(k, d)``)."""
        other = jnp.asarray(other)
        return self.T @ other if other.ndim == 1 else (self.T @ other.T).T

    def __repr__(self):
        batch = np.shape(self.data)[:-1]
        stacked = f", stacked {batch}" if batch else ""
        return f"SparseMatrix(shape={self.shape}, nnz={self.nnz}{stacked})"


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
