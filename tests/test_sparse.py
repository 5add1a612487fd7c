"""Sparse input stays sparse: products, hypergradients and estimators on CSR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import skfarho._base
from skfarho import HOLogisticRegression, HORidge
from skfarho._data import FitData, stack_all_rows, stack_folds, take_rows
from skfarho._objective import Validation
from skfarho._problem import model_problem
from skfarho.core import Implicit, float64_scope
from skfarho.core.models import binary_log_loss, linear_model
from skfarho.core.sparse import SparseMatrix, _chunk_size


def _matrix(rng, n=13, d=7, density=0.3):
    return sp.random(n, d, density, "csr", random_state=rng, dtype=np.float64)


def test_products_equal_dense(rng):
    X = _matrix(rng)
    dense = X.toarray()
    A = SparseMatrix.from_scipy(X, shape=(16, 7), nnz=X.nnz + 5)  # padded
    padded = np.vstack([dense, np.zeros((3, 7))])
    v, V = rng.normal(size=7), rng.normal(size=(7, 3))
    r, R = rng.normal(size=16), rng.normal(size=(2, 16))
    with float64_scope():
        np.testing.assert_allclose(A @ v, padded @ v, atol=1e-14)
        np.testing.assert_allclose(A @ V, padded @ V, atol=1e-14)
        np.testing.assert_allclose(r @ A, r @ padded, atol=1e-14)
        np.testing.assert_allclose(R @ A, R @ padded, atol=1e-14)
        np.testing.assert_allclose(A.T @ r, padded.T @ r, atol=1e-14)
        np.testing.assert_allclose(jax.jit(lambda A, v: A @ v)(A, v), padded @ v,
                                   atol=1e-14)
    np.testing.assert_array_equal(A.to_scipy().toarray(), padded)


def test_gradients_and_hessian_products_equal_dense(rng):
    X = _matrix(rng)
    A = SparseMatrix.from_scipy(X)
    y = (rng.random(X.shape[0]) < 0.5).astype(float)

    def loss(w, X):
        z = X @ w[:-1] + w[-1]
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.1 * jnp.sum(w**2)

    w, v = rng.normal(size=8), rng.normal(size=8)
    with float64_scope():
        dense = jnp.asarray(X.toarray())
        for X_ in (A, dense):
            assert jax.grad(loss)(w, X_).dtype == jnp.float64
        np.testing.assert_allclose(jax.grad(loss)(w, A), jax.grad(loss)(w, dense),
                                   atol=1e-14)
        hvp = [jax.jvp(lambda w, X_=X_: jax.grad(loss)(w, X_), (w,), (v,))[1]
               for X_ in (A, dense)]
        np.testing.assert_allclose(*hvp, atol=1e-14)
        # reverse over reverse, through the scores' cotangent
        cross = [jax.grad(lambda u, X_=X_: jnp.sum(jax.grad(loss)(w, X_) * u))(v)
                 for X_ in (A, dense)]
        np.testing.assert_allclose(*cross, atol=1e-14)


def test_chunked_products_gradients_and_vmap_equal_dense(rng):
    """Matrices of more than 4096 stored entries multiply by chunks (a scan):
    products, gradients, Hessian-vector products, data tangents and vmap over
    stacked folds equal the dense ones."""
    X = _matrix(rng, n=150, d=200, density=0.25)  # 7500 entries
    nnz = 3 * 2**12
    assert _chunk_size(nnz) == 2**12 and _chunk_size(X.nnz + 7) is None
    A = SparseMatrix.from_scipy(X, shape=(160, 200), nnz=nnz)
    dense = np.vstack([X.toarray(), np.zeros((10, 200))])
    y = (rng.random(160) < 0.5).astype(float)
    v, V, r = rng.normal(size=200), rng.normal(size=(200, 3)), rng.normal(size=160)

    def loss(w, X_):
        z = X_ @ w
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z) + 0.1 * jnp.sum(w**2)

    with float64_scope():
        D = jnp.asarray(dense)
        for got, want in ((A @ v, dense @ v), (A @ V, dense @ V), (r @ A, r @ dense),
                          (jax.grad(loss)(v, A), jax.grad(loss)(v, D))):
            np.testing.assert_allclose(got, want, atol=1e-12)
        hvp = [jax.jit(lambda w, u, X_: jax.jvp(lambda w: jax.grad(loss)(w, X_),
                                                 (w,), (u,))[1])(v, V[:, 0], X_)
               for X_ in (A, D)]
        np.testing.assert_allclose(*hvp, atol=1e-12)

        def scaled(data):  # the product is linear in the stored values too
            return SparseMatrix(data, A.row, A.col, A.shape, False) @ v

        data = jnp.asarray(A.data)
        np.testing.assert_allclose(jax.jvp(scaled, (data,), (2.0 * data,))[1],
                                   2.0 * dense @ v, atol=1e-12)
        stacked = SparseMatrix.stack([A, SparseMatrix.from_scipy(
            X[::-1], shape=(160, 200), nnz=nnz)])
        out = jax.vmap(lambda B, w: jax.grad(loss)(w, B))(stacked, V[:, :2].T)
    for k, matrix in enumerate((dense, dense[np.r_[np.arange(149, -1, -1), 150:160]])):
        with float64_scope():
            np.testing.assert_allclose(
                out[k], jax.grad(loss)(V[:, k], jnp.asarray(matrix)), atol=1e-12)


def test_entries_are_position_major_with_spread_padding(rng):
    """from_scipy stores the k-th entry of every row (rows ascending) before any
    (k+1)-th one; padding entries are zeros spread over all rows and columns."""
    X = _matrix(rng, n=30, d=20, density=0.3)
    A = SparseMatrix.from_scipy(X, shape=(32, 20), nnz=X.nnz + 40)
    row, col, data = (np.asarray(a) for a in (A.row, A.col, A.data))
    counts, positions = np.zeros(32, int), []
    for r in row[: X.nnz]:
        positions.append(counts[r])
        counts[r] += 1
    keys = np.array(positions) * 32 + row[: X.nnz]  # (position, row)
    assert np.all(np.diff(keys) > 0)
    np.testing.assert_array_equal(counts[:30], np.diff(X.indptr))
    assert np.all(data[X.nnz:] == 0)
    assert len(set(row[X.nnz:])) == 32 and len(set(col[X.nnz:])) == 20
    np.testing.assert_array_equal(A.to_scipy().toarray()[:30], X.toarray())


def test_stacked_matrices_vmap_per_fold(rng):
    matrices = [_matrix(rng, density=density) for density in (0.2, 0.4)]
    nnz = max(m.nnz for m in matrices) + 3
    stacked = SparseMatrix.stack([SparseMatrix.from_scipy(m, nnz=nnz)
                                  for m in matrices])
    W = rng.normal(size=(2, 7))
    with float64_scope():
        out = jax.vmap(lambda A, w: A @ w)(stacked, W)
    for k, m in enumerate(matrices):
        np.testing.assert_allclose(out[k], m @ W[k], atol=1e-14)
        np.testing.assert_array_equal(stacked[k].to_scipy().toarray(), m.toarray())


def test_folds_are_sparse_row_subsets(rng):
    X = _matrix(rng, n=20)
    y = rng.normal(size=20)
    splits = [(np.arange(5, 20), np.arange(5)), (np.arange(15), np.arange(15, 20))]
    sparse, dense = stack_folds(X, y, splits), stack_folds(X.toarray(), y, splits)
    assert isinstance(sparse.inner[0], SparseMatrix)
    for k in range(2):
        for got, want in ((sparse.inner, dense.inner), (sparse.outer, dense.outer)):
            mask = want[2][k] > 0  # padding rows differ (empty against row 0)
            np.testing.assert_array_equal(got[0][k].to_scipy().toarray()[mask],
                                          want[0][k][mask])
            for part in range(1, len(want)):
                np.testing.assert_array_equal(got[part][k], want[part][k])
    everything = stack_all_rows(X, y)
    np.testing.assert_array_equal(everything[0][0].to_scipy().toarray()[:20],
                                  X.toarray())
    assert take_rows(X, [np.arange(3)], 16).nnz >= X[:3].nnz


def _problem_and_data(rng, sparse):
    n, d = 40, 6
    X = _matrix(rng, n=n, d=d, density=0.5)
    y = (X @ rng.normal(size=d) * 3 + 0.5 * rng.normal(size=n) > 0.7).astype(float)
    Xs = X if sparse else X.toarray()
    folds = stack_folds(Xs, y, [(np.arange(28), np.arange(28, 40))])
    model = linear_model(binary_log_loss)
    problem = model_problem(model, Validation().outer_loss(model), "gd", 10)
    inner, outer = (tuple(part[0] for part in stacked) for stacked in folds)
    return problem, inner, outer, {"w0": model.init(d, 1)}


@pytest.mark.parametrize("sparse", [True, False])
def test_hypergradient_matches_finite_differences(rng, sparse):
    """Implicit hypergradient of per-feature strengths on CSR data: equal to the
    dense one and to central finite differences (float64)."""
    method = Implicit(inner_solver="scipy", tol=1e-11, max_inner_iter=5000)
    log_alpha = np.linspace(-1.0, 1.0, 6)
    results = {}
    for kind in (True, False):
        problem, inner, outer, fixed = _problem_and_data(np.random.default_rng(0),
                                                         kind)
        with float64_scope():
            results[kind] = method(problem, {"log_alpha": jnp.asarray(log_alpha)},
                                   inner, outer, fixed=fixed)
    np.testing.assert_allclose(results[True].grad["log_alpha"],
                               results[False].grad["log_alpha"], atol=1e-9)
    problem, inner, outer, fixed = _problem_and_data(np.random.default_rng(0), sparse)
    eps, numeric = 1e-4, []
    with float64_scope():
        for j in range(6):
            step = np.zeros(6)
            step[j] = eps
            values = [float(method(problem, {"log_alpha": jnp.asarray(log_alpha + s)},
                                   inner, outer, fixed=fixed).value)
                      for s in (step, -step)]
            numeric.append((values[0] - values[1]) / (2 * eps))
    np.testing.assert_allclose(results[sparse].grad["log_alpha"], numeric,
                               rtol=1e-5, atol=1e-8)


def _regression_data(rng, n=90, d=12):
    X = _matrix(rng, n=n, d=d, density=0.3)
    target = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    return X, target


@pytest.mark.no_x64
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", [HOLogisticRegression, HORidge])
@pytest.mark.parametrize("learn", ["alpha", "feature_alpha"])
@pytest.mark.parametrize("cv", [None, 3])
def test_estimator_on_csr_equals_dense(rng, monkeypatch, cls, learn, cv):
    # Both fits must run the same inner solver: a small dense HORidge would
    # otherwise switch to Newton's method (its agreement with L-BFGS-B, to the
    # solver tolerance, is tested in test_estimators). And in float64 throughout:
    # float32 early steps round sparse and dense products differently (compared
    # below, test_estimator_on_csr_near_dense_in_float32).
    monkeypatch.setattr(cls, "_newton_max_params", 0)
    monkeypatch.setattr(skfarho._base, "FLOAT32_TOL", np.inf)
    X, target = _regression_data(rng)
    if cls is HOLogisticRegression:
        target = (target > np.median(target)).astype(int)
    options = dict(learn=learn, cv=cv, objective="validation", outer_steps=4,
                   random_state=0)
    sparse = cls(**options).fit(X, target)
    dense = cls(**options).fit(X.toarray(), target)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-6)
    np.testing.assert_allclose(sparse.alpha_, dense.alpha_, rtol=1e-6)
    np.testing.assert_allclose(sparse.predict(X), dense.predict(X.toarray()),
                               atol=1e-6)


@pytest.mark.no_x64
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_on_csr_near_dense_in_float32(rng, host_program_dtypes):
    """With the default float32 early steps, CSR and dense fits differ by
    float32 rounding only (per-feature strengths: Adam's normalized steps carry
    it into the strengths, at about 1e-5)."""
    X, target = _regression_data(rng)
    target = (target > np.median(target)).astype(int)
    options = dict(learn="feature_alpha", objective="validation", outer_steps=4,
                   random_state=0)
    sparse = HOLogisticRegression(**options).fit(X, target)
    dense = HOLogisticRegression(**options).fit(X.toarray(), target)
    assert {np.dtype(np.float32)} in [arguments for arguments, _ in host_program_dtypes]
    np.testing.assert_allclose(sparse.alpha_, dense.alpha_, rtol=1e-3)
    np.testing.assert_allclose(sparse.predict_proba(X),
                               dense.predict_proba(X.toarray()), atol=1e-4)


@pytest.mark.no_x64
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_csc_input_and_no_dense_copy(rng, monkeypatch):
    X, target = _regression_data(rng)

    def refuse(*args, **kwargs):
        raise AssertionError("a dense copy of X was made")

    csr = HORidge(outer_steps=3, random_state=0, objective="validation").fit(X, target)
    for name in ("toarray", "todense"):
        for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
            monkeypatch.setattr(cls, name, refuse)
    csc = HORidge(outer_steps=3, random_state=0, objective="validation").fit(
        X.tocsc(), target)
    np.testing.assert_allclose(csc.coef_, csr.coef_, atol=1e-12)
    data = FitData.from_validated(X.tocsc(), target)
    assert data.sparse and data.X.format == "csr"
    folds = data.folds([(np.arange(60), np.arange(60, 90))])
    assert isinstance(folds.inner[0], SparseMatrix)
    assert isinstance(folds.outer[0], SparseMatrix)


@pytest.mark.no_x64
def test_evidence_refuses_sparse(rng):
    X, target = _regression_data(rng)
    with pytest.raises(ValueError, match="sparse"):
        HORidge(objective="evidence", learn="alpha").fit(X, target)


@pytest.mark.no_x64
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_traced_method_vmaps_sparse_folds(rng):
    """A traced method (reverse) vmaps over the stacked sparse folds (cv=2)."""
    X, target = _regression_data(rng, n=40, d=6)
    options = dict(learn="alpha", cv=2, hypergradient="reverse", inner_steps=20,
                   outer_steps=2, objective="validation", random_state=0)
    sparse = HORidge(**options).fit(X, target)
    dense = HORidge(**options).fit(X.toarray(), target)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-6)
    np.testing.assert_allclose(sparse.alpha_, dense.alpha_, rtol=1e-6)
