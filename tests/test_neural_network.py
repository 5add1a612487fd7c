"""HOMLPClassifier: the scikit-learn contract and what it learns."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skfarho.neural_network import HOMLPClassifier

pytestmark = pytest.mark.no_x64


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(300, noise=0.15, random_state=0)
    return train_test_split(StandardScaler().fit_transform(X), y, test_size=0.3,
                            stratify=y, random_state=0)


@parametrize_with_checks([HOMLPClassifier(outer_steps=3, inner_steps=20)],
                         expected_failed_checks=lambda est: {})
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_learns_a_nonlinear_boundary(moons):
    X_train, X_test, y_train, y_test = moons
    model = HOMLPClassifier(learn=(), inner_optimizer="adam", inner_steps=300,
                            random_state=0).fit(X_train, y_train)
    # not linearly separable: LogisticRegression scores 0.83 (measured: 0.944)
    assert model.score(X_test, y_test) >= 0.92
    assert [w.shape for w in model.coefs_] == [(2, 32), (32, 1)]
    assert [b.shape for b in model.intercepts_] == [(32,), (1,)]
    assert model.n_outputs_ == 1 and model.out_activation_ == "logistic"
    proba = model.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.log(proba), model.predict_log_proba(X_test),
                               atol=1e-10)
    np.testing.assert_array_equal(model.predict(X_test),
                                  (model.decision_function(X_test) > 0).astype(int))


def test_learning_weight_decay_and_learning_rate_lowers_validation_loss(moons):
    X_train, _, y_train, _ = moons
    # a strong weight decay and a small learning rate underfit; learning both fixes it
    model = HOMLPClassifier(learn=("alpha", "learning_rate"), alpha=30.0,
                            learning_rate=0.05, outer_steps=25, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    curve = model.objective_curve_
    assert curve.min() < 0.8 * curve[0], curve  # measured: 0.384 -> 0.251
    assert model.alpha_[0] < 30.0 and model.learning_rate_ > 0.05
    assert np.all(model.alpha_ == model.alpha_[0])


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_unrolled_methods_agree_on_first_outer_step(moons, method):
    """One outer step of reverse and forward mode differentiate the same thing."""
    X_train, _, y_train, _ = moons
    params = dict(learn=("alpha", "learning_rate"), outer_steps=1, inner_steps=30,
                  random_state=0, refit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = HOMLPClassifier(hypergradient=method, **params).fit(X_train, y_train)
        reverse = HOMLPClassifier(hypergradient="reverse", **params).fit(X_train,
                                                                        y_train)
    np.testing.assert_allclose(model.objective_curve_,
                               reverse.objective_curve_, rtol=1e-10)
    np.testing.assert_allclose(model.coefs_[0], reverse.coefs_[0], rtol=1e-8)


def test_per_feature_decay_and_example_weights(moons):
    X_train, _, y_train, _ = moons
    rng = np.random.default_rng(0)
    X_noisy = np.hstack([X_train, rng.standard_normal((len(X_train), 3))])
    model = HOMLPClassifier(learn=("feature_alpha", "sample_weight"), outer_steps=4,
                            inner_steps=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_noisy, y_train)
    assert model.alpha_.shape == (5,) and np.ptp(model.alpha_) > 0
    # 225 rows: a 25% holdout would have 57 rows, so 5 folds validate instead
    # and every row is trained on and weighted
    weights = model.sample_weight_
    assert np.all((weights > 0) & (weights < 1)) and np.ptp(weights) > 0


def test_example_weights_clean_flipped_labels(moons):
    """FAR-HO's data hyper-cleaning: weights of mislabelled rows go down."""
    X_train, X_test, y_train, y_test = moons
    flipped = np.random.default_rng(0).random(len(y_train)) < 0.25
    noisy = np.where(flipped, 1 - y_train, y_train)
    model = HOMLPClassifier(learn="sample_weight", outer_steps=40, inner_steps=100,
                            outer_learning_rate=0.5, random_state=0)
    model.fit(X_train, noisy, X_val=X_test, y_val=y_test)
    weights = model.sample_weight_
    # measured: 0.16 for flipped rows, 0.76 for the others
    assert weights[flipped].mean() < weights[~flipped].mean() - 0.3


def test_multiclass_pickle_pipeline_and_cross_validation():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(),
                         HOMLPClassifier(hidden_layer_size=8, activation="relu",
                                         outer_steps=3, inner_steps=50,
                                         random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(X, y)
        scores = cross_val_score(pipe, X, y, cv=3)
    model = pipe[-1]
    assert [w.shape for w in model.coefs_] == [(4, 8), (8, 3)]
    assert model.out_activation_ == "softmax" and model.n_outputs_ == 3
    assert pipe.score(X, y) > 0.85 and scores.mean() > 0.8
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.predict_proba(X), pipe.predict_proba(X))
    assert clone(model).get_params() == model.get_params()
    assert log_loss(y, pipe.predict_proba(X)) < log_loss(y, np.full((150, 3), 1 / 3))


def test_implicit_and_bad_parameters_raise_at_fit(moons):
    X_train, _, y_train, _ = moons
    with pytest.raises(ValueError, match="not convex"):
        HOMLPClassifier(hypergradient="implicit").fit(X_train, y_train)
    with pytest.raises(ValueError, match="hidden_layer_size"):
        HOMLPClassifier(hidden_layer_size=0).fit(X_train, y_train)
    with pytest.raises(ValueError, match="activation"):
        HOMLPClassifier(activation="softplus").fit(X_train, y_train)
    with pytest.raises(ValueError, match="class"):
        HOMLPClassifier().fit(X_train, np.zeros(len(y_train)))


def test_no_intercept_and_explicit_validation_data(moons):
    X_train, X_test, y_train, y_test = moons
    model = HOMLPClassifier(fit_intercept=False, outer_steps=2, inner_steps=20,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train, X_val=X_test, y_val=y_test)
    assert all(np.all(b == 0) for b in model.intercepts_)
    assert not np.isnan(model.sample_weight_).any()
