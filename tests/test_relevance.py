"""learn="feature_alpha" by default: per-feature strengths by the evidence, the
pruning threshold and the single-or-per-feature choice by K-fold CV
(:mod:`skfarho._relevance`). The evidence's hypergradient itself is checked
against finite differences in tests/test_core_evidence.py."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    ARDRegression,
    LogisticRegression,
    LogisticRegressionCV,
    RidgeCV,
)
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skfarho import HOLogisticRegression, HORidge


def _split(X, y, stratify=True):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, random_state=0, stratify=y if stratify else None)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


@pytest.fixture(scope="module")
def sparse_truth():
    """A logistic model on the first 4 of 40 Gaussian features."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 40))
    coef = np.r_[1.5, -1.5, 1.0, -1.0, np.zeros(36)]
    y = (rng.random(800) < 1 / (1 + np.exp(-X @ coef))).astype(int)
    return _split(X, y)


@pytest.fixture(scope="module")
def recipe_fit(sparse_truth):
    X, _, y, _ = sparse_truth
    return HOLogisticRegression(learn=("feature_alpha",), random_state=0).fit(X, y)


def test_prunes_noise_features_and_beats_one_strength(sparse_truth, recipe_fit):
    X, X_test, y, y_test = sparse_truth
    model = recipe_fit
    assert model.setting_ != "single"
    kept = np.isfinite(model.alpha_)
    assert kept[:4].all(), model.alpha_[:4]  # every informative feature kept
    assert kept[4:].mean() < 0.5  # most of the 36 noise features dropped
    np.testing.assert_array_equal(model.coef_[0, ~kept], 0.0)
    # against the one-strength candidate the same folds chose
    single = model.cv_results_["mean_test_loss"][
        list(model.cv_results_["setting"]).index("single")]
    chosen = model.cv_results_["mean_test_loss"][
        list(model.cv_results_["setting"]).index(model.setting_)]
    assert chosen < single
    # on test rows, against one strength chosen by 5-fold CV (the grid search)
    grid = LogisticRegressionCV(Cs=np.logspace(-3, 2, 11), cv=5,
                                scoring="neg_log_loss").fit(X, y)
    ours = log_loss(y_test, model.predict_proba(X_test))
    assert ours < log_loss(y_test, grid.predict_proba(X_test)) - 0.01


def test_fitted_attributes(sparse_truth, recipe_fit):
    X, _, _, _ = sparse_truth
    model = recipe_fit
    assert model.alpha_.shape == (X.shape[1],) and model.alpha_.min() > 0
    assert set(model.cv_results_) == {"setting", "mean_test_loss", "std_test_loss"}
    assert model.setting_ in model.cv_results_["setting"]
    assert model.n_iter_ == len(model.objective_curve_) > 0
    assert model.hyperparameter_path_["alpha"].shape == (model.n_iter_, X.shape[1])
    np.testing.assert_array_equal(model.sample_weight_, 1.0)
    for name in ("coef_", "intercept_", "alpha_", "objective_curve_"):
        assert isinstance(getattr(model, name), np.ndarray)
        assert np.all(np.isfinite(getattr(model, name)[np.isfinite(model.alpha_)]
                              if name == "alpha_" else getattr(model, name)))


def test_keeps_one_strength_where_per_feature_does_not_help():
    """Every feature informative: the 1-SE rule keeps the single strength, and
    the model is then scikit-learn's LogisticRegression with C = 1 / alpha."""
    X, y = make_classification(n_samples=300, n_features=8, n_informative=8,
                               n_redundant=0, random_state=1)
    X, _, y, _ = _split(X, y)
    model = HOLogisticRegression(learn=("feature_alpha",), random_state=0).fit(X, y)
    assert model.setting_ == "single"
    assert np.ptp(model.alpha_) == 0
    reference = LogisticRegression(C=1.0 / model.alpha_[0], tol=1e-10).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-4)


def test_multiclass_and_no_intercept():
    X, y = make_classification(n_samples=450, n_features=12, n_informative=3,
                               n_redundant=0, n_classes=3, n_clusters_per_class=1,
                               shuffle=False, random_state=0)
    X, X_test, y, y_test = _split(X, y)
    model = HOLogisticRegression(learn=("feature_alpha",), random_state=0,
                                 fit_intercept=False).fit(X, y)
    assert model.coef_.shape == (3, 12) and model.alpha_.shape == (12,)
    np.testing.assert_array_equal(model.intercept_, 0.0)
    assert log_loss(y_test, model.predict_proba(X_test)) < 0.5


def test_ridge_learns_sparse_truth_and_noise_precision():
    X, y, truth = make_regression(n_samples=160, n_features=60, n_informative=5,
                                  noise=1.0, coef=True, random_state=0)
    X, X_test, y, y_test = _split(X, y, stratify=False)
    model = HORidge(learn=("feature_alpha",), random_state=0).fit(X, y)
    ridge = RidgeCV(alphas=np.logspace(-4, 4, 30)).fit(X, y)
    ours = mean_squared_error(y_test, model.predict(X_test))
    assert ours < 0.5 * mean_squared_error(y_test, ridge.predict(X_test))
    assert set(np.flatnonzero(truth)) <= set(np.flatnonzero(np.isfinite(model.alpha_)))
    # noise precision 1 / sigma^2 (scaled features change nothing about y)
    assert 0.3 < model.noise_precision_ < 3.0


def test_objective_choice():
    """"auto" runs the recipe only where it applies; "validation" keeps the
    holdout-trained per-feature strengths."""
    X, y = make_classification(n_samples=200, n_features=6, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        validation = HOLogisticRegression(learn=("feature_alpha",), outer_steps=3,
                                          objective="validation",
                                          random_state=0).fit(X, y)
        given = HOLogisticRegression(learn=("feature_alpha",), outer_steps=3,
                                     random_state=0).fit(X[:150], y[:150],
                                                         X_val=X[150:],
                                                         y_val=y[150:])
        reverse = HOLogisticRegression(learn=("feature_alpha",), outer_steps=3,
                                       hypergradient="reverse",
                                       random_state=0).fit(X, y)
    for model in (validation, given, reverse):
        assert not hasattr(model, "setting_")
        assert model.n_iter_ == 3
    with pytest.raises(ValueError, match="needs hypergradient=\"implicit\""):
        HOLogisticRegression(learn=("feature_alpha",), objective="evidence",
                             hypergradient="reverse").fit(X, y)


def test_folds_follow_the_smallest_class():
    """cv=None: 5 folds, fewer when a class has fewer rows, an error below 2."""
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    y[:] = 0
    y[:3] = 1
    model = HOLogisticRegression(learn=("feature_alpha",), random_state=0).fit(X, y)
    assert model.cv_results_["mean_test_loss"].shape == (8,)
    assert np.all(np.isfinite(model.coef_))
    y[:] = 0
    y[0] = 1
    with pytest.raises(ValueError, match="at least 2 rows of every class"):
        HOLogisticRegression(learn=("feature_alpha",)).fit(X, y)


# ---- sparse or wide input: the diagonal recipe (skfarho._relevance_sparse) ----

def _text_like(seed, n=600, d=3000, informative=40):
    """CSR rows of ~30 non-zeros (unit norm); labels from a logistic model on
    ``informative`` of the 500 most frequent columns."""
    rng = np.random.default_rng(seed)
    frequency = 1.0 / np.arange(1, d + 1) ** 0.8
    rows = np.repeat(np.arange(2 * n), 30)
    columns = rng.choice(d, size=len(rows), p=frequency / frequency.sum())
    X = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(2 * n, d))
    X.sum_duplicates()
    X = sp.csr_matrix(sp.diags(1.0 / np.sqrt(X.multiply(X).sum(axis=1).A1)) @ X)
    coef = np.zeros(d)
    coef[rng.choice(500, informative, replace=False)] = rng.normal(0, 8, informative)
    logits = X @ coef
    y = (rng.random(2 * n) < 1 / (1 + np.exp(-(logits - np.median(logits))))) * 1
    return X[:n], X[n:], y[:n], y[n:]


@pytest.fixture(scope="module")
def text_like():
    return _text_like(0)


@pytest.fixture(scope="module")
def sparse_recipe_fit(text_like):
    X, _, y, _ = text_like
    return HOLogisticRegression(learn="feature_alpha", random_state=0).fit(X, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_input_not_worse_than_one_strength(text_like, sparse_recipe_fit, seed):
    """On CSR input the recipe runs (not the holdout-trained strengths) and its
    test loss is at most a hair above one strength's, below it where the truth
    is sparse."""
    X, X_test, y, y_test = text_like if seed == 0 else _text_like(seed)
    model = (sparse_recipe_fit if seed == 0 else
             HOLogisticRegression(learn="feature_alpha", random_state=0).fit(X, y))
    one = HOLogisticRegression(learn="alpha", random_state=0).fit(X, y)
    ours = log_loss(y_test, model.predict_proba(X_test))
    assert ours < log_loss(y_test, one.predict_proba(X_test)) + 0.005
    grid = LogisticRegressionCV(Cs=np.logspace(-2, 3, 11), cv=5,
                                scoring="neg_log_loss").fit(X, y)
    assert ours < log_loss(y_test, grid.predict_proba(X_test)) + 0.005


def test_sparse_fitted_attributes_and_optimality(text_like, sparse_recipe_fit):
    """alpha_ is inf exactly for dropped features (coefficient 0); the model is
    the minimizer of the estimators' inner loss at those strengths."""
    import jax
    import jax.numpy as jnp

    from skfarho._problem import regularized_loss
    from skfarho.core import float64_scope
    from skfarho.core.models import binary_log_loss, linear_model

    X, _, y, _ = text_like
    model = sparse_recipe_fit
    d = X.shape[1]
    assert model.alpha_.shape == (d,) and model.alpha_.min() > 0
    assert set(model.cv_results_) == {"setting", "mean_test_loss", "std_test_loss"}
    assert model.setting_ in model.cv_results_["setting"]
    assert model.cv_results_["setting"][0] == "single"
    kept = np.isfinite(model.alpha_)
    np.testing.assert_array_equal(model.coef_[0, ~kept], 0.0)
    assert model.n_iter_ == len(model.objective_curve_)
    if model.setting_ != "single":
        assert model.hyperparameter_path_["alpha"].shape == (model.n_iter_, d)
    else:
        assert np.ptp(model.alpha_) == 0
    params = {"coef": jnp.asarray(model.coef_[0, kept]),
              "intercept": jnp.asarray(model.intercept_[0])}
    inner = regularized_loss(linear_model(binary_log_loss))
    with float64_scope():
        hparams = {"log_alpha": jnp.log(jnp.asarray(model.alpha_[kept]))}
        grad = jax.grad(inner)(params, hparams, jnp.asarray(X[:, kept].toarray()),
                               jnp.asarray(y, jnp.float64), jnp.ones(len(y)),
                               jnp.arange(len(y)))
    assert max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(grad)) \
        < 1e-6


def test_sparse_input_is_never_densified(text_like, monkeypatch):
    X, _, y, _ = text_like
    X, y = X[:300, :1500], y[:300]

    def refuse(*args, **kwargs):
        raise AssertionError("a dense copy of X was made")

    for name in ("toarray", "todense"):
        for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
            monkeypatch.setattr(cls, name, refuse)
    model = HOLogisticRegression(learn="feature_alpha", random_state=0,
                                 cv=3).fit(X, y)
    assert hasattr(model, "setting_")


def test_wide_dense_input_equals_csr(text_like, monkeypatch):
    """Dense X past MAX_PARAMS coefficients runs the same diagonal recipe as
    its CSR copy, with the same result."""
    import skfarho._base

    X, _, y, _ = text_like
    X, y = X[:200, :600], y[:200]
    monkeypatch.setattr(skfarho._base, "MAX_PARAMS", 500)
    options = dict(learn="feature_alpha", random_state=0, cv=3)
    sparse = HOLogisticRegression(**options).fit(X, y)
    dense = HOLogisticRegression(**options).fit(X.toarray(), y)
    assert dense.setting_ == sparse.setting_
    np.testing.assert_allclose(dense.alpha_, sparse.alpha_, rtol=1e-10)
    np.testing.assert_allclose(dense.coef_, sparse.coef_, atol=1e-8)


@pytest.mark.parametrize("loss", ["binary", "multinomial", "squared"])
def test_diagonal_curvature_is_the_hessians(loss):
    """H_jj of the diagonal recipe: the exact Hessian's diagonal (JAX)."""
    import jax
    import jax.numpy as jnp

    from skfarho._relevance_sparse import _Glm
    from skfarho.core import float64_scope
    from skfarho.core.models import (
        binary_log_loss,
        multinomial_log_loss,
        squared_loss,
    )

    rng = np.random.default_rng(0)
    X = sp.random(40, 7, 0.4, "csr", random_state=1)
    function, K = {"binary": (binary_log_loss, 1),
                   "multinomial": (multinomial_log_loss, 3),
                   "squared": (squared_loss, 1)}[loss]
    y = rng.integers(0, 3, 40) if K > 1 else rng.integers(0, 2, 40) * 1.0
    glm = _Glm(X, y, function, K, True)
    theta, log_alpha = rng.normal(size=7 * K + K), rng.normal(size=7)
    H, data_term, _ = glm.curvature(theta, log_alpha)

    def total(coef):
        scores = jnp.asarray(X.toarray()) @ coef.reshape(7, K).squeeze() + \
            theta[7 * K:].squeeze()
        penalty = 0.5 * jnp.sum(jnp.exp(log_alpha)[:, None]
                                * coef.reshape(7, K) ** 2)
        return jnp.sum(function(scores, jnp.asarray(y))) + penalty

    with float64_scope():
        hessian = jax.hessian(total)(jnp.asarray(theta[:7 * K]))
        value = float(total(jnp.asarray(theta[:7 * K])))
    np.testing.assert_allclose(H.ravel(), np.diag(hessian), rtol=1e-10)
    penalty = 0.5 * np.sum(np.exp(log_alpha)[:, None] * theta[:7 * K].reshape(7, K)
                           ** 2)
    assert data_term == pytest.approx(value - penalty, rel=1e-10)


def test_sparse_multiclass_and_ridge(text_like):
    X, X_test, y, y_test = text_like
    X, X_test = X[:, :1000], X_test[:, :1000]
    scores = X @ np.random.default_rng(0).normal(size=1000)
    labels = np.digitize(scores, np.quantile(scores, [1 / 3, 2 / 3]))
    model = HOLogisticRegression(learn="feature_alpha", random_state=0,
                                 cv=3).fit(X, labels)
    assert model.coef_.shape == (3, 1000) and model.alpha_.shape == (1000,)
    assert model.score(X, labels) > 0.9
    target = X @ np.r_[np.ones(20), np.zeros(980)] * 5 + 0.1 * \
        np.random.default_rng(0).normal(size=X.shape[0])
    ridge = HORidge(learn="feature_alpha", random_state=0, cv=3).fit(X, target)
    assert ridge.noise_precision_ > 0 and np.isfinite(ridge.coef_).all()
    one = HORidge(learn="alpha", random_state=0, cv=3).fit(X, target)
    test_target = X_test @ np.r_[np.ones(20), np.zeros(980)] * 5
    # the truth is on 20 of the 1000 columns: far below one strength
    assert mean_squared_error(test_target, ridge.predict(X_test)) < \
        0.5 * mean_squared_error(test_target, one.predict(X_test))


@pytest.mark.parametrize("shape", [(60, 8), (20, 45)])
@pytest.mark.parametrize("intercept", [True, False])
def test_exact_ridge_solve_equals_lbfgs(shape, intercept, monkeypatch):
    """The squared loss's closed-form fit (normal equations, or Woodbury when
    n < d) is the minimizer L-BFGS-B finds, and its gradient vanishes."""
    import skfarho._relevance_sparse as diagonal
    from skfarho.core.models import squared_loss

    rng = np.random.default_rng(1)
    X = rng.normal(size=shape) + 0.5
    y = X @ rng.normal(size=shape[1]) + 3.0 + rng.normal(size=shape[0])
    log_alpha = rng.uniform(-3, 4, size=shape[1])
    glm = diagonal._Glm(X, y, squared_loss, 1, intercept)
    exact = glm.solve(log_alpha)
    coef, bias = glm.unpack(exact)
    residual = X @ coef + bias - y
    np.testing.assert_allclose(X.T @ residual + np.exp(log_alpha) * coef, 0.0,
                               atol=1e-8)
    if intercept:
        assert abs(residual.sum()) < 1e-8
    monkeypatch.setattr(diagonal, "EXACT_RIDGE", 0)
    iterative = glm.solve(log_alpha)  # to L-BFGS-B's tolerances
    np.testing.assert_allclose(exact, iterative, rtol=1e-3, atol=1e-4)

    def objective(theta):
        coef, bias = glm.unpack(theta)
        return (0.5 * np.sum((X @ coef + bias - y) ** 2)
                + 0.5 * np.sum(np.exp(log_alpha) * coef**2))

    assert objective(exact) <= objective(iterative) + 1e-9


def test_more_features_than_rows_runs_the_diagonal_recipe(monkeypatch):
    """Dense X with d >= n (within MAX_PARAMS) takes the diagonal recipe (for
    the squared loss: exact variances, and MacKay's steps also from
    ARDRegression's start), which finds the sparse truth and beats
    ARDRegression itself; one strength only interpolates there."""
    import skfarho._base

    calls = []
    original = skfarho._base.learn_sparse_feature_strengths

    def spy(*args, **kwargs):
        calls.append(args[1].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(skfarho._base, "learn_sparse_feature_strengths", spy)
    X, y, truth = make_regression(n_samples=160, n_features=200, n_informative=8,
                                  noise=5.0, coef=True, random_state=0)
    X, X_test, y, y_test = _split(X, y, stratify=False)
    model = HORidge(learn="feature_alpha", random_state=0).fit(X, y)
    assert calls == [X.shape]
    assert set(np.flatnonzero(truth)) <= set(np.flatnonzero(np.isfinite(model.alpha_)))
    ours = mean_squared_error(y_test, model.predict(X_test))
    ard = ARDRegression().fit(X, y)
    assert ours < mean_squared_error(y_test, ard.predict(X_test))
    one = HORidge(learn="alpha", random_state=0).fit(X, y)
    assert ours < 0.1 * mean_squared_error(y_test, one.predict(X_test))
