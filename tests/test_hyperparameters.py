"""The estimators' learnable hyperparameters: encodings, the problem they enter,
and learning the inner dynamics' momentum like the learning rate."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bilevel_problems import central_difference, random_direction, tree_dot
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skfarho import HOLogisticRegression
from skfarho._data import FitData
from skfarho._hyperparameters import (
    LEARNABLE,
    Context,
    decode_hyperparameters,
    initial_hyperparameters,
)
from skfarho._objective import Validation
from skfarho._problem import model_problem
from skfarho.core import Forward, Reverse
from skfarho.core.models import binary_log_loss, linear_model

CONTEXT = Context(alpha=2.0, n_features=3, n_rows=10, learning_rate=0.3, lr_max=1.0,
                  momentum=0.9)


def test_initial_values_decode_to_the_given_ones():
    learned, fixed = initial_hyperparameters(tuple(LEARNABLE), CONTEXT)
    assert set(fixed) == {"lr_max"}  # every entry the problem reads is learned
    decoded = decode_hyperparameters({**learned, **fixed}, CONTEXT)
    np.testing.assert_allclose(decoded["alpha_"], [2.0, 2.0, 2.0])
    np.testing.assert_allclose(decoded["sample_weight_"], np.full(10, 0.5))
    assert decoded["learning_rate_"] == pytest.approx(0.3)
    assert decoded["momentum_"] == pytest.approx(0.9)


def test_equal_models_share_the_cached_problem():
    outer = Validation().outer_loss(linear_model(binary_log_loss))
    first = model_problem(linear_model(binary_log_loss), outer, "momentum", 30)
    assert model_problem(linear_model(binary_log_loss),
                         Validation().outer_loss(linear_model(binary_log_loss)),
                         "momentum", 30) is first


@pytest.mark.parametrize("method", [Reverse(), Forward()], ids=repr)
def test_momentum_and_learning_rate_hypergradients_match_finite_differences(
        method, rng):
    """The estimators' own problem (heavy ball reading ``momentum_logit`` and
    ``lr_logit``), in float64, against central differences."""
    model = linear_model(binary_log_loss)
    problem = model_problem(model, Validation().outer_loss(model), "momentum", 40)
    X = rng.standard_normal((48, 3))
    y = (X[:, 0] + 0.5 * rng.standard_normal(48) > 0).astype(float)
    folds = FitData(X, y).folds([(np.arange(32), np.arange(32, 48))])
    inner, outer = (tuple(jnp.asarray(part[0]) for part in data)
                    for data in (folds.inner, folds.outer))
    learned, fixed = initial_hyperparameters(("feature_alpha", "learning_rate",
                                              "momentum"), CONTEXT)
    fixed["w0"] = model.init(3, 1, None)
    learned = jax.tree_util.tree_map(jnp.asarray, learned)

    def value(hparams):
        return method(problem, hparams, inner, outer, fixed=fixed).value

    grad = jax.jit(lambda h: method(problem, h, inner, outer, fixed=fixed).grad)(
        learned)
    assert abs(float(grad["momentum_logit"])) > 1e-6  # the momentum matters
    for _ in range(3):
        direction = random_direction(learned, rng)
        expected = central_difference(jax.jit(value), learned, direction)
        assert float(tree_dot(grad, direction)) == pytest.approx(float(expected),
                                                                 rel=1e-5)


@pytest.mark.no_x64
@pytest.mark.parametrize("hypergradient", ["reverse", "forward"])
def test_estimator_learns_momentum(hypergradient):
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = HOLogisticRegression(
            learn=("alpha", "learning_rate", "momentum"), inner_optimizer="momentum",
            hypergradient=hypergradient, inner_steps=40, outer_steps=6,
            random_state=0).fit(X, y)
    path = model.hyperparameter_path_["momentum"]
    assert path.shape == (model.n_iter_,) and path[0] == pytest.approx(0.9)
    assert 0.0 < model.momentum_ < 1.0 and model.momentum_ != pytest.approx(0.9)
    assert model.objective_curve_.min() < model.objective_curve_[0]
    assert model.score(X, y) > 0.95


@pytest.mark.no_x64
def test_momentum_needs_heavy_ball_and_an_unrolled_method():
    X, y = np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) % 2
    with pytest.raises(ValueError, match='inner_optimizer="momentum"'):
        HOLogisticRegression(learn="momentum", hypergradient="reverse").fit(X, y)
    with pytest.raises(ValueError, match="unrolled"):
        HOLogisticRegression(learn="momentum", inner_optimizer="momentum").fit(X, y)
