"""skfarho: gradient-based hyperparameter optimization for scikit-learn, on JAX."""

__version__ = "0.1.0"

__all__ = ["__version__"]
