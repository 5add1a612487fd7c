"""
Write your own estimator: Poisson regression with a learned L2 strength
=======================================================================

A new model is its pure JAX functions (a :class:`skfarho.core.models.Model`)
and a few lines of scikit-learn glue on :class:`skfarho.GradientHOEstimator`,
which brings validation, splits, the hypergradient methods, the outer loop and
the fitted hyperparameters.
"""

import jax.numpy as jnp
import numpy as np
from sklearn.base import RegressorMixin

from skfarho import GradientHOEstimator
from skfarho.core.models import linear_model


def poisson_loss(z, y):
    """Negative Poisson log-likelihood of the log-rate ``z`` (up to a constant)."""
    return jnp.exp(z) - y * z


class HOPoissonRegressor(RegressorMixin, GradientHOEstimator):
    """Poisson regression (log link) that learns its L2 strength."""

    _n_outputs = 1
    _curvature = 1.0  # a bound near the rates at the start, for learning_rate="auto"

    def _model(self):
        return linear_model(poisson_loss, self.fit_intercept)

    def _encode_targets(self, y, reset):
        y = np.asarray(y, dtype=np.float64)
        if np.any(y < 0):
            raise ValueError("HOPoissonRegressor needs non-negative targets.")
        return y

    def _set_model_attributes(self, params):
        self.coef_ = params["coef"]
        self.intercept_ = float(params.get("intercept", 0.0))

    def predict(self, X):
        X = self._validate_for_predict(X)
        return np.exp(X @ self.coef_ + self.intercept_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags


def main(argv=None):
    """Fit it next to GridSearchCV(PoissonRegressor) on simulated counts."""
    from sklearn.linear_model import PoissonRegressor
    from sklearn.metrics import mean_poisson_deviance
    from sklearn.model_selection import GridSearchCV, train_test_split

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 20))
    y = rng.poisson(np.exp(0.3 * X[:, :5].sum(axis=1)))
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    ours = HOPoissonRegressor(random_state=0).fit(X_train, y_train)
    grid = GridSearchCV(PoissonRegressor(max_iter=1000),
                        {"alpha": np.logspace(-4, 1, 20)}, cv=5).fit(X_train, y_train)
    # our penalty is alpha / (2 n) ||coef||^2 on the mean loss: alpha / n in
    # PoissonRegressor's scale
    print(f"alpha / n: learned {ours.alpha_[0] / len(y_train):.3g}, "
          f"GridSearchCV {grid.best_params_['alpha']:.3g}")
    for name, model in (("skfarho", ours), ("GridSearchCV", grid)):
        deviance = mean_poisson_deviance(y_test, model.predict(X_test))
        print(f"{name:>12}: test mean Poisson deviance {deviance:.4f}")


if __name__ == "__main__":
    main()
