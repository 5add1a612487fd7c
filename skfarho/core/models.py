"""Models: pure functions of parameters and data, shared by estimators and tasks.

A :class:`Model` is four functions, each a module-level function or a small
frozen dataclass, so that two models built with the same arguments compare (and
hash) equal and the cached bilevel problems and compiled programs built from them
are reused:

- ``init(n_features, n_outputs, random_state)``: initial parameters, a dict of
  NumPy arrays;
- ``scores(params, X)``: decision values, ``(n,)`` for one output, ``(n, K)``
  otherwise (JAX);
- ``sample_loss(scores, y)``: the per-sample loss (JAX);
- ``feature_squares(params)``: per input feature, the squared weights its L2
  strength multiplies. The L2 penalty is
  ``0.5 * sum(exp(log_alpha) * feature_squares(params))`` (:meth:`Model.penalty`),
  with ``log_alpha`` a scalar or one entry per feature.

:func:`linear_model` and :func:`mlp` build the two models of the estimators; the
losses, activations and Glorot initialization below exist once, here.

Examples
--------
>>> import numpy as np
>>> from skfarho.core.models import linear_model, squared_loss
>>> model = linear_model(squared_loss)
>>> params = model.init(n_features=3, n_outputs=1, random_state=0)
>>> params["coef"] = np.array([1.0, 2.0, 0.0])
>>> X = np.eye(3)
>>> np.asarray(model.scores(params, X)).tolist()
[1.0, 2.0, 0.0]
>>> float(model.penalty(params, np.log(2.0)))  # 0.5 * 2 * (1 + 4)
5.0
>>> model == linear_model(squared_loss, fit_intercept=True)
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


# ---- per-sample losses ------------------------------------------------------
def binary_log_loss(z, y):
    """Per-sample logistic loss of scores ``z`` for ``y`` in {0, 1}.

    Examples
    --------
    >>> round(float(binary_log_loss(0.0, 1.0)), 4)  # log(2)
    0.6931
    """
    return jnp.logaddexp(0.0, z) - y * z


def multinomial_log_loss(z, y):
    """Per-sample cross-entropy of scores ``z`` (n, K) for integer labels ``y``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> loss = multinomial_log_loss(jnp.zeros((2, 4)), jnp.array([0, 3]))
    >>> [round(float(v), 4) for v in loss]  # log(4) each
    [1.3863, 1.3863]
    """
    # a one-hot product is cheaper than a gather on XLA:CPU
    picked = jnp.sum(z * jax.nn.one_hot(y, z.shape[1], dtype=z.dtype), axis=1)
    return jax.nn.logsumexp(z, axis=1) - picked


def squared_loss(z, y):
    """Per-sample ``0.5 (z - y)^2``.

    Examples
    --------
    >>> float(squared_loss(3.0, 1.0))
    2.0
    """
    return 0.5 * (z - y) ** 2


# ---- activations and initialization -----------------------------------------
def identity(z):
    """The identity activation."""
    return z


ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "logistic": jax.nn.sigmoid,
    "identity": identity,
}
"""Hidden-layer non-linearities by name (JAX)."""


def get_activation(name: str) -> Callable:
    """The activation function called ``name``; a ValueError names the choices.

    Examples
    --------
    >>> float(get_activation("relu")(-1.0))
    0.0
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                         f"{name!r}.")
    return ACTIVATIONS[name]


def _generator(random_state):
    """``random_state`` if it draws (RandomState, Generator), else a Generator."""
    if hasattr(random_state, "uniform"):
        return random_state
    return np.random.default_rng(random_state)


def glorot_uniform(random_state, fan_in: int, fan_out: int, shape=None,
                   factor: float = 6.0) -> np.ndarray:
    """Draws from ``U(-b, b)`` with ``b = sqrt(factor / (fan_in + fan_out))``.

    Glorot and Bengio's (2010) uniform initialization; scikit-learn's
    ``MLPClassifier`` uses ``factor=2`` for the logistic activation, 6 otherwise.

    Parameters
    ----------
    random_state : numpy.random.RandomState, numpy.random.Generator, int or None
        Where the draws come from (an int or None seeds ``default_rng``).
    fan_in, fan_out : int
        Input and output dimensions of the layer.
    shape : tuple of int, optional
        Shape of the draw; default ``(fan_in, fan_out)``.
    factor : float, default=6.0
        See above.

    Returns
    -------
    ndarray
        The draws (float64).

    Examples
    --------
    >>> W = glorot_uniform(0, 64, 32)
    >>> W.shape, bool(abs(W).max() <= (6 / 96) ** 0.5)
    ((64, 32), True)
    """
    bound = np.sqrt(factor / (fan_in + fan_out))
    shape = (fan_in, fan_out) if shape is None else shape
    return _generator(random_state).uniform(-bound, bound, shape)


# ---- the model --------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A model as pure functions (see the module docstring for their contracts).

    Parameters
    ----------
    init : callable
        ``init(n_features, n_outputs, random_state) -> dict`` of NumPy arrays.
    scores : callable
        ``scores(params, X)``: decision values.
    sample_loss : callable
        ``sample_loss(scores, y)``: per-sample loss.
    feature_squares : callable
        ``feature_squares(params) -> (n_features,)``: the squared weights each
        feature's L2 strength multiplies.

    Examples
    --------
    A Poisson regression with a log link, from the linear model's pieces (what
    :func:`linear_model` builds; models of equal pieces are equal):

    >>> import jax.numpy as jnp
    >>> def poisson_loss(z, y):
    ...     return jnp.exp(z) - y * z
    >>> model = Model(LinearInit(), linear_scores, poisson_loss, coef_squares)
    >>> model == linear_model(poisson_loss)
    True
    >>> float(model.loss(model.init(2, 1), jnp.ones((1, 2)), jnp.ones(1))[0])
    1.0
    """

    init: Callable[..., dict]
    scores: Callable[..., jax.Array]
    sample_loss: Callable[..., jax.Array]
    feature_squares: Callable[[PyTree], jax.Array]

    def loss(self, params, X, y):
        """Per-sample losses ``sample_loss(scores(params, X), y)``."""
        return self.sample_loss(self.scores(params, X), y)

    def penalty(self, params, log_alpha):
        """``0.5 * sum(exp(log_alpha) * feature_squares(params))``."""
        squares = self.feature_squares(params)
        return 0.5 * jnp.sum(jnp.exp(log_alpha) * squares)


# ---- linear models ----------------------------------------------------------
def linear_scores(params, X):
    """Decision values ``X coef + intercept`` (JAX)."""
    out = X @ params["coef"]
    return out + params["intercept"] if "intercept" in params else out


def coef_squares(params):
    """Per feature, the squared coefficients (summed over outputs)."""
    coef = params["coef"]
    return coef**2 if coef.ndim == 1 else (coef**2).sum(axis=1)


@dataclass(frozen=True)
class LinearInit:
    """Zero coefficients ``(n_features,)`` (one output) or ``(n_features, K)``.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Add a zero ``"intercept"`` (scalar or ``(K,)``).
    """

    fit_intercept: bool = True

    def __call__(self, n_features: int, n_outputs: int, random_state=None) -> dict:
        """``{"coef", "intercept"}``; ``random_state`` is unused."""
        shape = (n_features,) if n_outputs == 1 else (n_features, n_outputs)
        params = {"coef": np.zeros(shape)}
        if self.fit_intercept:
            params["intercept"] = np.zeros(shape[1:])
        return params


def linear_model(loss: Callable, fit_intercept: bool = True) -> Model:
    """A linear model ``X coef + intercept`` with the per-sample loss ``loss``.

    Parameters
    ----------
    loss : callable
        ``loss(scores, y)``, e.g. :func:`binary_log_loss` (one output),
        :func:`multinomial_log_loss` (``n_outputs`` classes) or
        :func:`squared_loss`; a module-level function, so that equal models
        compare equal.
    fit_intercept : bool, default=True
        Fit an unpenalized intercept.

    Returns
    -------
    Model
        Parameters ``{"coef", "intercept"}``, initialized at zero; the L2
        penalty reads ``coef``.

    Examples
    --------
    >>> model = linear_model(multinomial_log_loss, fit_intercept=False)
    >>> {k: v.shape for k, v in model.init(4, 3, None).items()}
    {'coef': (4, 3)}
    """
    return Model(LinearInit(bool(fit_intercept)), linear_scores, loss, coef_squares)


# ---- one-hidden-layer networks ----------------------------------------------
def _make_mlp_scores(name):
    act = ACTIVATIONS[name]

    def mlp_scores(params, X):
        hidden = act(X @ params["W1"] + params.get("b1", 0.0))
        return hidden @ params["W2"] + params.get("b2", 0.0)

    mlp_scores.__name__ = mlp_scores.__qualname__ = f"mlp_scores_{name}"
    return mlp_scores


# one function object per activation, so that equal networks compare equal
_MLP_SCORES = {name: _make_mlp_scores(name) for name in ACTIVATIONS}


def mlp_scores(activation_name: str) -> Callable:
    """``act(X W1 + b1) W2 + b2`` (biases optional) for the named activation.

    The same function object for the same name.

    Examples
    --------
    >>> mlp_scores("tanh") is mlp_scores("tanh")
    True
    """
    get_activation(activation_name)  # a ValueError for an unknown name
    return _MLP_SCORES[activation_name]


def mlp_feature_squares(params):
    """Per input feature ``j``: ``||W1[j]||^2 + ||W2||^2 / n_features``.

    With one strength ``alpha`` the penalty ``alpha / 2`` times their sum is the
    weight decay of scikit-learn's ``MLPClassifier`` (before its ``1 / n``);
    with one strength per feature, feature ``j``'s strength decays its outgoing
    first-layer weights and the output layer is decayed with the mean strength.
    Biases are free.
    """
    W1 = params["W1"]
    return jnp.sum(W1**2, axis=1) + jnp.sum(params["W2"] ** 2) / W1.shape[0]


@dataclass(frozen=True)
class MLPInit:
    """Glorot-uniform weights and biases, as ``MLPClassifier`` draws them.

    Layer by layer, the weights then the bias from ``U(-b, b)`` (see
    :func:`glorot_uniform`; ``factor=2`` for the logistic activation). With one
    output, ``W2`` has shape ``(n_hidden,)`` and ``b2`` is a scalar, so that the
    scores have shape ``(n,)``.

    Parameters
    ----------
    n_hidden : int
        Hidden units.
    activation : str, default="tanh"
        Hidden non-linearity (sets the Glorot factor).
    fit_intercept : bool, default=True
        Keep the biases ``b1``, ``b2`` (drawn either way, so that the weights
        do not depend on it).
    """

    n_hidden: int
    activation: str = "tanh"
    fit_intercept: bool = True

    def __call__(self, n_features: int, n_outputs: int, random_state=None) -> dict:
        """``{"W1", "b1", "W2", "b2"}`` (NumPy)."""
        random_state = _generator(random_state)
        factor = 2.0 if self.activation == "logistic" else 6.0
        params = {}
        for layer, (fan_in, fan_out) in enumerate(
                [(n_features, self.n_hidden), (self.n_hidden, n_outputs)], start=1):
            params[f"W{layer}"] = glorot_uniform(random_state, fan_in, fan_out,
                                                 factor=factor)
            bias = glorot_uniform(random_state, fan_in, fan_out, (fan_out,), factor)
            if self.fit_intercept:
                params[f"b{layer}"] = bias
        if n_outputs == 1:  # scores of shape (n,), as binary_log_loss expects
            params["W2"] = params["W2"][:, 0]
            if self.fit_intercept:
                params["b2"] = params["b2"][0]
        return params


def mlp(n_hidden: int, activation: str = "tanh",
        loss: Callable = multinomial_log_loss, fit_intercept: bool = True) -> Model:
    """A one-hidden-layer network ``act(X W1 + b1) W2 + b2``.

    Parameters
    ----------
    n_hidden : int
        Hidden units.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        Hidden non-linearity.
    loss : callable, default=multinomial_log_loss
        Per-sample loss of the scores (:func:`binary_log_loss` with one output).
    fit_intercept : bool, default=True
        Give both layers biases (never penalized).

    Returns
    -------
    Model
        Parameters ``{"W1", "b1", "W2", "b2"}`` (Glorot-uniform, see
        :class:`MLPInit`); the penalty reads :func:`mlp_feature_squares`.

    Examples
    --------
    >>> model = mlp(8, "relu", binary_log_loss)
    >>> params = model.init(3, 1, random_state=0)
    >>> {k: v.shape for k, v in params.items()}
    {'W1': (3, 8), 'b1': (8,), 'W2': (8,), 'b2': ()}
    >>> model.scores(params, np.ones((5, 3))).shape
    (5,)
    >>> hash(model) == hash(mlp(8, activation="relu", loss=binary_log_loss))
    True
    """
    return Model(MLPInit(int(n_hidden), activation, bool(fit_intercept)),
                 mlp_scores(activation), loss, mlp_feature_squares)
