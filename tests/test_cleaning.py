"""Label-issue detection: exact hypergradients, rankings, no recompilation."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from bilevel_problems import central_difference, random_direction
from sklearn.metrics import roc_auc_score

from skfarho._cleaning import (
    cleaning_data,
    cleaning_problem,
    detect_label_issues,
    hypergradient,
)
from skfarho.core import CG, Batched, HostImplicit, Implicit
from skfarho.core.problem import bind_fixed


def blobs(rng, n, n_classes=3, n_features=4, spread=2.5, flip=0.0, n_clean=0):
    """Gaussian blobs: ``X, y, flipped`` with ``flip`` of the ``n`` rows given
    another class, and ``X_clean, y_clean``: ``n_clean`` more rows, labels true."""
    centers = spread * rng.normal(size=(n_classes, n_features))
    truth = rng.integers(n_classes, size=n + n_clean)
    X = centers[truth] + rng.normal(size=(n + n_clean, n_features))
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.permutation(n)[:round(flip * n)]] = True
    y = truth[:n].copy()
    y[flipped] = (y[flipped] + rng.integers(1, n_classes, flipped.sum())) % n_classes
    return X[:n], y, flipped, X[n:], truth[n:]


@pytest.fixture
def small_problem(rng):
    """Cross-fitted detection data with trusted rows, and random logits."""
    X, y, _, X_clean, y_clean = blobs(rng, 36, flip=0.2, n_clean=12)
    data = cleaning_data(X, y, X_clean, y_clean, n_classes=3, cv=3,
                         detection_alpha=0.05, random_state=0)
    logits = jnp.asarray(0.5 * rng.normal(size=len(data.fixed["trusted"])))
    return data, {"sw_logit": logits}


def exact_objective(data):
    """Mean over folds of the outer loss at the exact inner minimizer.

    Newton steps with a pseudo-inverse: the softmax scores are invariant to a
    common shift of the (unpenalized) intercepts, so the Hessian is singular
    along that direction, which neither loss sees.
    """
    problem = bind_fixed(cleaning_problem(), data.fixed)

    def fold_objective(hparams, inner, outer):
        start = problem.init_params(hparams)
        flat, unravel = jax.flatten_util.ravel_pytree(start)

        def inner_loss(vector):
            return problem.inner_loss(unravel(vector), hparams, *inner)

        def newton_step(vector, _):
            step = jnp.linalg.pinv(jax.hessian(inner_loss)(vector), hermitian=True)
            return vector - step @ jax.grad(inner_loss)(vector), None

        flat, _ = jax.lax.scan(newton_step, flat, None, length=30)
        return problem.outer_loss(unravel(flat), hparams, *outer)

    batched = jax.vmap(fold_objective, in_axes=(None, 0, 0))
    return jax.jit(lambda h: jnp.mean(batched(h, data.inner, data.outer)))


@pytest.mark.parametrize("method", [
    Batched(HostImplicit(tol=1e-11, max_inner_iter=5000)),
    Batched(Implicit(CG(), tol=1e-12)),
], ids=["host", "traced"])
def test_hypergradient_matches_central_differences(small_problem, rng, method):
    """d(weighted held-out MAE)/d(logits) of the cross-fitted problem, float64."""
    data, hparams = small_problem
    result = hypergradient(cleaning_problem(), method, hparams, data)
    grad = np.asarray(result.grad["sw_logit"])
    objective = exact_objective(data)
    np.testing.assert_allclose(float(result.value), float(objective(hparams)),
                               rtol=1e-8)
    size = len(grad)
    directions = [random_direction(hparams, rng)["sw_logit"]]
    directions += [jnp.zeros(size).at[i].set(1.0) for i in (0, 5, 17, 35)]
    for direction in directions:
        difference = central_difference(objective, hparams, {"sw_logit": direction})
        np.testing.assert_allclose(grad @ np.asarray(direction), float(difference),
                                   rtol=1e-5, atol=1e-9)
    # trusted rows have weight 1 whatever their logit, padded rows no weight
    np.testing.assert_array_equal(grad[36:], 0.0)
    assert np.abs(grad[:36]).min() > 0


@pytest.mark.parametrize("with_clean", [False, True])
def test_flipped_rows_are_ranked_first(with_clean):
    rng = np.random.default_rng(1)
    X, y, flipped, X_clean, y_clean = blobs(rng, 400, n_classes=4, spread=4.0,
                                            flip=0.15, n_clean=100)
    clean = {"X_clean": X_clean, "y_clean": y_clean} if with_clean else {}
    result = detect_label_issues(X, y, random_state=0, **clean)
    assert roc_auc_score(flipped, -result.quality) > 0.97
    true_positives = (result.issues & flipped).sum()
    assert true_positives >= 0.85 * flipped.sum()
    assert true_positives >= 0.85 * result.issues.sum()
    # weights: in [0, 1], ordered as the quality, below 0.5 exactly on the issues
    assert np.all((result.quality >= 0) & (result.quality <= 1))
    order = np.argsort(result.quality, kind="stable")
    assert np.all(np.diff(result.weights[order]) >= 0)
    np.testing.assert_array_equal(result.weights < 0.5, result.issues)


def test_correct_labels_are_rarely_flagged(rng):
    X, y, *_ = blobs(rng, 200, spread=4.0)
    result = detect_label_issues(X, y, random_state=0)
    assert result.issues.sum() <= 0.05 * len(y)


@pytest.mark.no_x64
def test_refitting_same_bucket_does_not_recompile(compile_counter):
    rng = np.random.default_rng(2)
    X, y, *_ = blobs(rng, 300, flip=0.1)
    detect_label_issues(X, y, n_classes=3, random_state=0)
    before = compile_counter()
    detect_label_issues(X[:290], y[:290], n_classes=3, random_state=1)
    assert compile_counter() == before
    assert jax.config.jax_enable_x64 is False  # the scope was restored


def test_out_of_fold_probabilities_feed_cleanlab():
    """Interop: the fold models' out-of-fold probabilities are cleanlab's
    ``pred_probs``, row for row."""
    filters = pytest.importorskip("cleanlab.filter")
    rng = np.random.default_rng(3)
    X, y, flipped, *_ = blobs(rng, 300, n_classes=3, spread=4.0, flip=0.1)
    result = detect_label_issues(X, y, random_state=0)
    assert result.proba.shape == (300, 3)
    np.testing.assert_allclose(result.proba.sum(axis=1), 1.0)
    theirs = filters.find_label_issues(y, result.proba, n_jobs=1)
    assert (theirs & flipped).sum() >= 0.85 * flipped.sum()
    assert (theirs & result.issues).sum() >= 0.85 * theirs.sum()
