"""The docs' "Write your own estimator" example is a complete estimator."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import PoissonRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

pytestmark = pytest.mark.no_x64

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_estimator.py"
# imported as a module (not run as a script) so its estimator pickles
_spec = importlib.util.spec_from_file_location("custom_estimator", EXAMPLE)
_module = importlib.util.module_from_spec(_spec)
sys.modules["custom_estimator"] = _module
_spec.loader.exec_module(_module)
HOPoissonRegressor = _module.HOPoissonRegressor


@parametrize_with_checks([HOPoissonRegressor(outer_steps=5)])
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_learns_alpha_and_fits_counts():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = rng.poisson(np.exp(0.5 * X[:, 0]))
    model = HOPoissonRegressor(alpha=100.0, inner_tol=1e-10,
                               random_state=0).fit(X, y)
    assert model.alpha_[0] < 100.0  # the strong initial strength was relaxed
    assert model.objective_curve_[-1] < model.objective_curve_[0]
    # the final model is scikit-learn's Poisson regression at the learned alpha
    reference = PoissonRegressor(alpha=model.alpha_[0] / len(y), tol=1e-10,
                                 max_iter=1000).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-5)
    with pytest.raises(ValueError, match="non-negative"):
        HOPoissonRegressor().fit(X, -y - 1.0)
