"""skfarho: gradient-based hyperparameter optimization for scikit-learn, on JAX.

The estimators (:class:`HOLogisticRegression`, :class:`HORidge`,
:class:`HOMLPClassifier`, and their base
:class:`GradientHOEstimator`) learn their hyperparameters by hypergradient
descent on a validation loss; :mod:`skfarho.core` is the functional JAX core.
"""

__version__ = "0.1.0"

from skfarho._base import GradientHOEstimator  # noqa: E402
from skfarho.core import DivergenceError  # noqa: E402
from skfarho.linear_model import HOLogisticRegression, HORidge  # noqa: E402
from skfarho.neural_network import HOMLPClassifier  # noqa: E402

__all__ = [
    "DivergenceError",
    "GradientHOEstimator",
    "HOLogisticRegression",
    "HOMLPClassifier",
    "HORidge",
    "__version__",
]
