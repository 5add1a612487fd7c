"""Meta-learning: many few-shot inner problems, one set of hyperparameters.

Two bilevel formulations from FAR-HO (Franceschi et al., 2018), on episodes of
``n_way``-way ``k_shot``-shot classification (:mod:`skfarho.core.episodes`,
re-exported here):

- **hyper-representation** (:func:`hyper_representation_problem`): the
  hyperparameters are a feature map ``phi(x) = act(x W + b)`` shared by all
  tasks; each task's inner problem trains its own linear softmax head on
  ``phi(support set)`` by ``num_steps`` gradient steps (L2 on the head); the
  outer objective is the cross-entropy of the trained head on the task's query
  set;
- **learned initialization** (:func:`learned_initialization_problem`,
  MAML-style): the hyperparameters are the *initial* weights of a
  one-hidden-layer network that every task fine-tunes on its support set.

The meta-objective is the mean query loss over a batch of tasks: wrap any
hypergradient method in :class:`~skfarho.core.Batched` (``vmap`` over the
leading episode axis of the data). :func:`meta_train` runs
:func:`~skfarho.core.outer.compiled_outer_step` on a new batch of episodes at
every outer step; :func:`~skfarho.core.minimize_hyperparameters` works too, on
a fixed batch. :func:`query_accuracy` evaluates on held-out episodes. The
models, losses and initialization are those of :mod:`skfarho.core.models`.

If ``hparams`` holds a ``"log_lr"`` entry, the inner learning rate is
``exp(hparams["log_lr"])`` and is meta-learned with the rest.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from skfarho.core.batch import Batched
from skfarho.core.dynamics import gradient_descent
from skfarho.core.episodes import Episodes, make_episodes
from skfarho.core.models import (
    get_activation,
    glorot_uniform,
    linear_model,
    mlp_feature_squares,
    mlp_scores,
    multinomial_log_loss,
)
from skfarho.core.outer import DivergenceError, compiled_outer_step
from skfarho.core.problem import BilevelProblem
from skfarho.core.reverse import Reverse
from skfarho.core.unroll import unrolled_params

__all__ = [
    "Episodes",
    "FewShotProblem",
    "MetaTrainResult",
    "cross_entropy",
    "hyper_representation_problem",
    "init_network",
    "init_representation",
    "learned_initialization_problem",
    "make_episodes",
    "meta_train",
    "query_accuracy",
]

PyTree = Any

# each task's softmax head on the representation: {"coef", "intercept"}
_HEAD = linear_model(multinomial_log_loss)


# ---- problems ---------------------------------------------------------------
def cross_entropy(scores, y):
    """Mean softmax cross-entropy of ``scores`` (n, K) for integer labels ``y``.

    The mean of :func:`~skfarho.core.models.multinomial_log_loss`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> round(float(cross_entropy(jnp.zeros((3, 2)), jnp.array([0, 1, 1]))), 4)
    0.6931
    """
    return jnp.mean(multinomial_log_loss(scores, y))


def init_representation(n_features: int, n_hidden: int, rng=None) -> dict:
    """Glorot-uniform weights of a representation ``act(x W + b)``.

    Parameters
    ----------
    n_features, n_hidden : int
        Input dimension and dimension of the representation.
    rng : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    dict
        ``{"W": (n_features, n_hidden), "b": (n_hidden,)}`` (NumPy, ``b`` zero).

    Examples
    --------
    >>> {k: v.shape for k, v in init_representation(64, 32, rng=0).items()}
    {'W': (64, 32), 'b': (32,)}
    """
    rng = np.random.default_rng(rng)
    return {"W": glorot_uniform(rng, n_features, n_hidden), "b": np.zeros(n_hidden)}


def init_network(n_features: int, n_hidden: int, n_way: int, rng=None) -> dict:
    """Glorot-uniform weights of a one-hidden-layer network (biases zero).

    Parameters
    ----------
    n_features, n_hidden, n_way : int
        Input dimension, hidden units and outputs (classes per episode).
    rng : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    dict
        ``{"W1": (n_features, n_hidden), "b1": (n_hidden,), "W2": (n_hidden,
        n_way), "b2": (n_way,)}`` (NumPy).

    Examples
    --------
    >>> sorted(init_network(64, 32, 5, rng=0))
    ['W1', 'W2', 'b1', 'b2']
    """
    rng = np.random.default_rng(rng)
    return {"W1": glorot_uniform(rng, n_features, n_hidden), "b1": np.zeros(n_hidden),
            "W2": glorot_uniform(rng, n_hidden, n_way), "b2": np.zeros(n_way)}


@dataclass(frozen=True)
class FewShotProblem(BilevelProblem):
    """A :class:`~skfarho.core.BilevelProblem` that also knows how to predict.

    See :class:`~skfarho.core.BilevelProblem` for the other parameters.

    Parameters
    ----------
    scores : callable
        ``scores(params, hparams, X) -> (n, n_way)``: the class scores of the
        task model with inner parameters ``params``; the outer loss is their
        cross-entropy on the query set.
    """

    scores: Callable[..., jax.Array] | None = None


def _few_shot_problem(scores, feature_squares, l2, init_params, learning_rate,
                      num_steps) -> FewShotProblem:
    """Support cross-entropy plus ``l2 / 2`` times the summed feature squares,
    query cross-entropy outside; gradient descent at ``exp(hparams["log_lr"])``
    if learned, else at ``learning_rate``."""

    def inner_loss(params, hparams, X, y):
        penalty = 0.5 * l2 * jnp.sum(feature_squares(params))
        return cross_entropy(scores(params, hparams, X), y) + penalty

    def outer_loss(params, hparams, X, y):
        return cross_entropy(scores(params, hparams, X), y)

    def rate(hparams):
        return jnp.exp(hparams["log_lr"]) if "log_lr" in hparams else learning_rate

    return FewShotProblem(inner_loss, outer_loss, init_params,
                          gradient_descent(rate), num_steps, scores)


@functools.lru_cache(maxsize=32)
def hyper_representation_problem(n_way: int, num_steps: int = 15,
                                 learning_rate: float = 0.5,
                                 head_l2: float = 1e-3,
                                 activation: str = "tanh") -> FewShotProblem:
    """A shared representation as hyperparameter, a per-task head as parameters.

    Hyperparameters ``{"W": (d, h), "b": (h,)}`` (optionally ``"log_lr"``)
    define ``phi(x) = act(x W + b)``. Inner parameters: a softmax head, the
    linear model ``{"coef": (h, n_way), "intercept": (n_way,)}`` of
    :func:`~skfarho.core.models.linear_model`, started at zero and trained by
    ``num_steps`` steps of gradient descent on

    .. math::

        \\frac1{n_s} \\sum_{i \\in S} \\mathrm{CE}(\\phi(x_i) V + c, y_i)
        + \\frac{\\lambda}{2} \\lVert V \\rVert^2;

    outer loss: the query cross-entropy of the trained head. Inner data
    ``(support_X, support_y)``, outer data ``(query_X, query_y)``.

    Parameters
    ----------
    n_way : int
        Classes per episode.
    num_steps : int, default=15
        Inner gradient steps.
    learning_rate : float, default=0.5
        Inner learning rate, unless ``hparams`` holds ``"log_lr"``.
    head_l2 : float, default=1e-3
        L2 strength ``lambda`` on the head's weights.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        Non-linearity of the representation. ``"identity"`` with ``W`` the
        identity matrix is a linear head on the raw inputs (a baseline).

    Returns
    -------
    FewShotProblem
        The problem (cached: equal arguments give the same object, so compiled
        steps are reused).

    Examples
    --------
    >>> import numpy as np
    >>> problem = hyper_representation_problem(n_way=2, num_steps=5)
    >>> hparams = init_representation(3, 4, rng=0)
    >>> head = problem.init_params(hparams)
    >>> head["coef"].shape
    (4, 2)
    >>> X, y = np.eye(3)[[0, 1, 2, 0]], np.array([0, 1, 1, 0])
    >>> round(float(problem.outer_loss(head, hparams, X, y)), 4)  # log(2)
    0.6931
    """
    act = get_activation(activation)

    def scores(head, hparams, X):
        return _HEAD.scores(head, act(X @ hparams["W"] + hparams["b"]))

    def init_params(hparams):
        W = jnp.asarray(hparams["W"])
        return jax.tree_util.tree_map(lambda zeros: jnp.asarray(zeros, W.dtype),
                                      _HEAD.init(W.shape[1], n_way))

    return _few_shot_problem(scores, _HEAD.feature_squares, head_l2, init_params,
                             learning_rate, num_steps)


_NETWORK_KEYS = ("W1", "b1", "W2", "b2")


@functools.lru_cache(maxsize=32)
def learned_initialization_problem(num_steps: int = 5, learning_rate: float = 0.5,
                                   l2: float = 0.0,
                                   activation: str = "tanh") -> FewShotProblem:
    """The initial weights of a one-hidden-layer network as hyperparameters.

    MAML (Finn et al., 2017) with the exact second-order hypergradient: every
    task fine-tunes the whole network ``act(x W1 + b1) W2 + b2`` from the
    hyperparameters ``{"W1", "b1", "W2", "b2"}`` (see :func:`init_network`;
    optionally ``"log_lr"`` too) by ``num_steps`` gradient steps on its support
    cross-entropy plus ``l2 / 2`` times the squared weights; the outer loss is
    the query cross-entropy of the fine-tuned network.

    Parameters
    ----------
    num_steps : int, default=5
        Inner (fine-tuning) gradient steps.
    learning_rate : float, default=0.5
        Inner learning rate, unless ``hparams`` holds ``"log_lr"``.
    l2 : float, default=0.0
        L2 strength on ``W1`` and ``W2`` during fine-tuning.
    activation : {"tanh", "relu", "logistic", "identity"}, default="tanh"
        Hidden non-linearity.

    Returns
    -------
    FewShotProblem
        The problem (cached on its arguments).

    Examples
    --------
    >>> problem = learned_initialization_problem(num_steps=3)
    >>> hparams = {**init_network(3, 4, 2, rng=0), "log_lr": -1.0}
    >>> sorted(problem.init_params(hparams))  # log_lr is not a weight
    ['W1', 'W2', 'b1', 'b2']
    """
    network = mlp_scores(activation)

    def scores(params, hparams, X):
        return network(params, X)

    def init_params(hparams):
        return {key: hparams[key] for key in _NETWORK_KEYS}

    # the MLP's feature squares sum to ||W1||^2 + ||W2||^2
    return _few_shot_problem(scores, mlp_feature_squares, l2, init_params,
                             learning_rate, num_steps)


# ---- training and evaluation ------------------------------------------------
class MetaTrainResult(NamedTuple):
    """What :func:`meta_train` returns.

    Attributes
    ----------
    hparams : PyTree
        The hyperparameters after the last outer step.
    history : dict of ndarray
        ``"value"``: the meta-training objective (mean query loss of the batch)
        at each outer step; ``"time"``: seconds since the start.
    n_steps : int
        Outer steps taken.
    """

    hparams: PyTree
    history: dict
    n_steps: int


@functools.cache
def _default_meta_optimizer():
    return optax.adam(1e-2)


def meta_train(problem, hparams: PyTree, episodes, *, batch_size: int = 16,
               num_steps: int = 200, method=None,
               optimizer: optax.GradientTransformation | None = None,
               rng=None, callback=None) -> MetaTrainResult:
    """Meta-learn the hyperparameters on a new batch of episodes at each step.

    Parameters
    ----------
    problem : BilevelProblem
        A few-shot problem, e.g. from :func:`hyper_representation_problem`.
    hparams : PyTree
        Initial hyperparameters.
    episodes : Episodes or callable
        A pool of meta-training episodes (each step draws ``batch_size`` of them
        without replacement), or ``episodes(rng) -> Episodes``, called at each
        step with a NumPy generator to sample a fresh batch.
    batch_size : int, default=16
        Episodes per outer step (pool only).
    num_steps : int, default=200
        Outer steps.
    method : callable, default=Batched(Reverse())
        A batched hypergradient method; the objective is the mean query loss of
        the batch.
    optimizer : optax.GradientTransformation, default=optax.adam(1e-2)
        Outer optimizer (reuse the same object to reuse the compiled step).
    rng : int, numpy.random.Generator or None, default=None
        Seed or generator of the batches.
    callback : callable, optional
        ``callback(step, hparams, value)`` after each step; returning True stops.

    Returns
    -------
    MetaTrainResult
        Final hyperparameters and the objective per step.

    Raises
    ------
    DivergenceError
        When the inner training or the hypergradient stop being finite.

    Examples
    --------
    Meta-train a representation on episodes of 3 Gaussian blobs per class:

    >>> import numpy as np
    >>> import optax
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(6), 20)
    >>> X = rng.normal(size=(6, 5))[y] + 0.5 * rng.normal(size=(120, 5))
    >>> pool = make_episodes(X, y, n_way=3, k_shot=2, n_query=4, n_episodes=32,
    ...                      rng=0)
    >>> problem = hyper_representation_problem(n_way=3, num_steps=10)
    >>> result = meta_train(problem, init_representation(5, 8, rng=0), pool,
    ...                     batch_size=8, num_steps=30,
    ...                     optimizer=optax.adam(0.05), rng=0)
    >>> value = result.history["value"]
    >>> bool(value[-5:].mean() < value[:5].mean())
    True
    """
    method = Batched(Reverse()) if method is None else method
    optimizer = _default_meta_optimizer() if optimizer is None else optimizer
    # the arguments minimize_hyperparameters passes: the same compiled program
    step_fn = compiled_outer_step(problem, method, optimizer, None)
    rng = np.random.default_rng(rng)
    hparams = jax.tree_util.tree_map(jnp.asarray, hparams)
    opt_state = optimizer.init(hparams)
    values, times, start = [], [], time.perf_counter()
    for k in range(num_steps):
        batch = _next_batch(episodes, batch_size, rng)
        new_hparams, opt_state, result, grad_norm = step_fn(
            hparams, opt_state, None, None, batch.inner, batch.outer, {})
        if not (bool(result.finite) and np.isfinite(float(grad_norm))):
            raise DivergenceError(
                f"Non-finite meta-objective or hypergradient at outer step {k}: "
                f"{method.divergence_hint}.")
        values.append(float(result.value))
        times.append(time.perf_counter() - start)
        hparams = new_hparams
        if callback is not None and callback(k, hparams, result.value):
            break
    history = {"value": np.asarray(values), "time": np.asarray(times)}
    return MetaTrainResult(hparams, history, len(values))


def _next_batch(episodes, batch_size, rng):
    """``episodes(rng)``, or ``batch_size`` episodes of the pool without replacement."""
    if callable(episodes):
        return episodes(rng)
    if batch_size > episodes.n_episodes:
        raise ValueError(f"batch_size={batch_size} exceeds the pool of "
                         f"{episodes.n_episodes} episodes.")
    return episodes.select(rng.choice(episodes.n_episodes, batch_size, replace=False))


@functools.lru_cache(maxsize=32)
def _compiled_accuracy(problem):
    def one(hparams, support_X, support_y, query_X, query_y):
        params = unrolled_params(problem, hparams, (support_X, support_y))
        predicted = jnp.argmax(problem.scores(params, hparams, query_X), axis=1)
        return jnp.mean(predicted == query_y)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, 0)))


def query_accuracy(problem: FewShotProblem, hparams: PyTree, episodes: Episodes,
                   *, per_episode: bool = False):
    """Query accuracy after the inner training, on (held-out) episodes.

    Parameters
    ----------
    problem : FewShotProblem
        The problem whose ``num_steps`` inner steps train each episode's model.
    hparams : PyTree
        The (meta-learned) hyperparameters.
    episodes : Episodes
        The evaluation episodes (from meta-test classes, typically).
    per_episode : bool, default=False
        Return the accuracy of every episode instead of the mean.

    Returns
    -------
    float or ndarray of shape (n_episodes,)
        Mean query accuracy, or one per episode.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(4), 10)
    >>> X = 3.0 * np.eye(4)[y] + 0.1 * rng.normal(size=(40, 4))
    >>> episodes = make_episodes(X, y, 2, 1, 3, n_episodes=5, rng=0)
    >>> problem = hyper_representation_problem(n_way=2, num_steps=20)
    >>> float(query_accuracy(problem, init_representation(4, 8, rng=0), episodes))
    1.0
    """
    if getattr(problem, "scores", None) is None:
        raise TypeError("query_accuracy needs a FewShotProblem (with scores).")
    hparams = jax.tree_util.tree_map(jnp.asarray, hparams)
    accuracy = np.asarray(_compiled_accuracy(problem)(hparams, *episodes.inner,
                                                     *episodes.outer))
    return accuracy if per_episode else float(accuracy.mean())
