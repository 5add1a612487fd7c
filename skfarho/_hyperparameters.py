"""The learnable hyperparameters: one declaration each, read everywhere else.

The core sees hyperparameters in an unconstrained space (a dict of arrays, the
``hparams`` of :class:`~skfarho.core.BilevelProblem`); users see them decoded, as
fitted attributes. Each :class:`Learnable` states its name in ``learn``, the key
and shape of its unconstrained value, its encoding (log, sigmoid, bounded
sigmoid), its initial value and the fitted attribute it becomes. Adding one means
adding an entry to :data:`LEARNABLE` and reading its key in the problem
(:mod:`skfarho._problem`).

Keys the problem reads:

- ``log_alpha``: log of the L2 strength, scalar or one per feature;
- ``sw_logit``: per-example weights ``sigmoid(sw_logit)``, one per row given to
  ``fit`` (padded to a shape bucket);
- ``lr_logit``: the inner learning rate ``lr_max * sigmoid(lr_logit)``, below
  ``lr_max`` (a fixed entry);
- ``momentum_logit``: the heavy-ball momentum ``sigmoid(momentum_logit)``;
- ``log_noise_precision``: the noise precision of the Gaussian evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import expit, logit

from skfarho._data import bucket


class Context(NamedTuple):
    """What the initial values depend on (decided by the estimator in ``fit``)."""

    alpha: float            # initial (or fixed) L2 strength
    n_features: int
    n_rows: int             # rows given to fit (example weights are per row)
    learning_rate: float    # initial inner learning rate
    lr_max: float           # bound of a learned learning rate
    momentum: float         # initial (or fixed) heavy-ball momentum
    noise_precision: float = 1.0  # initial noise precision (evidence of ridge)


@dataclass(frozen=True)
class Learnable:
    """One learnable hyperparameter.

    Parameters
    ----------
    name : str
        Its name in ``learn``.
    key : str
        The key of its unconstrained value in ``hparams``.
    attribute : str
        The fitted attribute holding its decoded value.
    unrolled_only : bool
        True for coefficients of the inner dynamics, which the implicit method
        (differentiating the exact minimizer) does not see.
    public : bool
        False for hyperparameters an objective adds itself (not in ``learn``).
    """

    name: str
    key: str
    attribute: str
    unrolled_only: bool = False
    public: bool = True

    def initial(self, context: Context) -> np.ndarray:
        """The encoded initial value."""
        if self.key == "log_alpha":
            log_alpha = np.log(context.alpha)
            if self.name == "feature_alpha":
                return np.full(context.n_features, log_alpha)
            return np.asarray(log_alpha)
        if self.key == "sw_logit":
            return np.zeros(bucket(context.n_rows))
        if self.key == "lr_logit":
            lr0, lr_max = context.learning_rate, context.lr_max
            return np.asarray(np.log(lr0) - np.log(lr_max - lr0))
        if self.key == "log_noise_precision":
            return np.asarray(np.log(context.noise_precision))
        return np.asarray(logit(context.momentum))

    def decode(self, value, fixed: dict, context: Context):
        """The user-facing value of an encoded one (NumPy)."""
        value = np.asarray(value, dtype=np.float64)
        if self.key == "log_alpha":
            return np.broadcast_to(np.exp(value), (context.n_features,)).copy()
        if self.key == "sw_logit":
            return expit(value)[: context.n_rows]
        if self.key == "lr_logit":
            return float(fixed["lr_max"]) * expit(value)
        if self.key == "log_noise_precision":
            return np.exp(value)
        return expit(value)


LEARNABLE = {spec.name: spec for spec in (
    Learnable("alpha", "log_alpha", "alpha_"),
    Learnable("feature_alpha", "log_alpha", "alpha_"),
    Learnable("sample_weight", "sw_logit", "sample_weight_"),
    Learnable("learning_rate", "lr_logit", "learning_rate_", unrolled_only=True),
    Learnable("momentum", "momentum_logit", "momentum_", unrolled_only=True),
    # learned by objective="evidence" for the squared loss, not named in learn
    Learnable("noise_precision", "log_noise_precision", "noise_precision_",
              public=False),
)}

# the entries the problem always reads, and which learnable supplies each when
# none is learned
_DEFAULTS = {"log_alpha": "alpha", "lr_logit": "learning_rate",
             "momentum_logit": "momentum"}


def check_learn(learn, unrolled: bool) -> tuple:
    """``learn`` as a tuple of known names, or a ``ValueError`` saying why not."""
    learn = (learn,) if isinstance(learn, str) else tuple(learn)
    public = [name for name, spec in LEARNABLE.items() if spec.public]
    unknown = sorted(set(learn) - set(public))
    if unknown:
        raise ValueError(f"Unknown names in learn: {unknown}; choose among "
                         f"{public}.")
    for name in learn:
        if LEARNABLE[name].unrolled_only and not unrolled:
            raise ValueError(
                f'learn="{name}" needs an unrolled hypergradient: the implicit '
                "method differentiates the exact minimizer, which does not depend "
                f'on the inner dynamics. Use hypergradient="reverse" or "forward".')
    if {"alpha", "feature_alpha"} <= set(learn):
        learn = tuple(name for name in learn if name != "alpha")
    return learn


def initial_hyperparameters(learn, context: Context) -> tuple[dict, dict]:
    """The encoded ``(learned, fixed)`` dicts the problem reads."""
    learned = {LEARNABLE[name].key: LEARNABLE[name].initial(context) for name in learn}
    fixed = {key: LEARNABLE[name].initial(context) for key, name in _DEFAULTS.items()
             if key not in learned}
    fixed["lr_max"] = np.asarray(context.lr_max)
    return learned, fixed


def decode_hyperparameters(hparams: dict, context: Context) -> dict:
    """Fitted attribute name -> decoded value, for every entry of ``hparams``."""
    return {spec.attribute: spec.decode(hparams[spec.key], hparams, context)
            for spec in LEARNABLE.values() if spec.key in hparams}


def weights_for_refit(hparams: dict, trained: np.ndarray) -> dict:
    """Learned example weights with rows no fold trained on (outer rows of a
    holdout) given the mean weight of the trained rows, for the final fit."""
    if "sw_logit" not in hparams:
        return hparams
    logits = np.array(hparams["sw_logit"], dtype=np.float64)
    n_rows = len(trained)
    fill = expit(logits[:n_rows][trained]).mean()
    logits[:n_rows] = np.where(trained, logits[:n_rows], logit(fill))
    return {**hparams, "sw_logit": logits}
