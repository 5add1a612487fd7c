"""Displays of what the estimators learned, in scikit-learn's style.

Each display has a ``from_estimator`` class method that reads only fitted
attributes, a ``plot(ax=None, **kwargs)`` method that returns the display with
``ax_`` and ``figure_`` set, and imports matplotlib only when it draws
(``pip install 'skfarho[plot]'``):

- :class:`HyperparameterPathDisplay`: the outer objective and the
  hyperparameters at each outer step;
- :class:`FeatureStrengthDisplay`: the learned per-feature L2 strengths,
  sorted, optionally against known relevant features;
- :class:`SampleWeightDisplay`: the learned example weights, histogram and
  ranked rows, optionally against known mislabeled rows.
"""

from skfarho.display._path import HyperparameterPathDisplay
from skfarho.display._strength import FeatureStrengthDisplay
from skfarho.display._weights import SampleWeightDisplay

__all__ = [
    "FeatureStrengthDisplay",
    "HyperparameterPathDisplay",
    "SampleWeightDisplay",
]
