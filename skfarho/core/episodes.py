"""Few-shot episodes: ``n_way``-way ``k_shot``-shot tasks sampled from labelled data.

An episode is a small classification task: a support set to train on and a query
set to evaluate on, labelled ``0 .. n_way - 1`` in a random order of the classes
drawn. :class:`Episodes` stacks them on a leading axis, so that a batched
hypergradient method (:class:`~skfarho.core.Batched`) maps over them; its
:attr:`~Episodes.inner` and :attr:`~Episodes.outer` are the inner and outer data
of the bilevel problems of :mod:`skfarho.core.meta_learning`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Episodes(NamedTuple):
    """A stack of few-shot episodes; every array has a leading episode axis.

    Attributes
    ----------
    support_X : ndarray of shape (n_episodes, n_way * k_shot, n_features)
        Support (training) inputs of every episode, class by class.
    support_y : ndarray of shape (n_episodes, n_way * k_shot)
        Support labels in ``0 .. n_way - 1``.
    query_X : ndarray of shape (n_episodes, n_way * n_query, n_features)
        Query (validation) inputs.
    query_y : ndarray of shape (n_episodes, n_way * n_query)
        Query labels in ``0 .. n_way - 1``.
    classes : ndarray of shape (n_episodes, n_way)
        The original class of each episode label: ``classes[e, k]`` is the class
        called ``k`` in episode ``e``.
    """

    support_X: np.ndarray
    support_y: np.ndarray
    query_X: np.ndarray
    query_y: np.ndarray
    classes: np.ndarray

    @property
    def inner(self) -> tuple:
        """``(support_X, support_y)``: the inner data of the bilevel problem."""
        return (self.support_X, self.support_y)

    @property
    def outer(self) -> tuple:
        """``(query_X, query_y)``: the outer data of the bilevel problem."""
        return (self.query_X, self.query_y)

    @property
    def n_episodes(self) -> int:
        """Number of episodes."""
        return len(self.support_X)

    def select(self, index) -> Episodes:
        """The episodes at ``index`` (an integer array, a slice or a mask)."""
        return Episodes(*(np.asarray(part)[index] for part in self))


def make_episodes(X, y, n_way: int, k_shot: int, n_query: int, n_episodes: int,
                  rng=None) -> Episodes:
    """Sample ``n_way``-way ``k_shot``-shot episodes from a labelled data set.

    Each episode draws ``n_way`` distinct classes of ``y`` in random order (the
    ``k``-th drawn class gets label ``k``, so labels carry no meaning across
    episodes), then ``k_shot + n_query`` distinct rows of each class: the first
    ``k_shot`` go to the support set, the others to the query set. For
    meta-testing, sample from classes never seen in meta-training.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inputs (kept in their floating dtype).
    y : array-like of shape (n_samples,)
        Class labels, any type.
    n_way : int
        Classes per episode.
    k_shot : int
        Support examples per class.
    n_query : int
        Query examples per class.
    n_episodes : int
        Number of episodes.
    rng : int, numpy.random.Generator or None, default=None
        Seed or generator.

    Returns
    -------
    Episodes
        The episodes, stacked on a leading axis; labels are ``int32``.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.arange(40.0).reshape(20, 2), np.repeat([3, 5, 7, 9], 5)
    >>> episodes = make_episodes(X, y, n_way=2, k_shot=1, n_query=2,
    ...                          n_episodes=4, rng=0)
    >>> episodes.support_X.shape, episodes.query_X.shape
    ((4, 2, 2), (4, 4, 2))
    >>> episodes.support_y[0].tolist(), episodes.query_y[0].tolist()
    ([0, 1], [0, 0, 1, 1])
    """
    X, y = np.asarray(X), np.asarray(y)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"X must be 2-d with one row per label, got X of shape "
                         f"{X.shape} and {len(y)} labels.")
    for name, value, low in (("n_way", n_way, 2), ("k_shot", k_shot, 1),
                             ("n_query", n_query, 1), ("n_episodes", n_episodes, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    classes, inverse = np.unique(y, return_inverse=True)
    if len(classes) < n_way:
        raise ValueError(f"n_way={n_way} needs at least {n_way} classes, y has "
                         f"{len(classes)}.")
    members = [np.flatnonzero(inverse == c) for c in range(len(classes))]
    per_class = k_shot + n_query
    smallest = min(len(m) for m in members)
    if smallest < per_class:
        raise ValueError(f"k_shot + n_query = {per_class} rows per class are needed; "
                         f"the smallest class has {smallest}.")
    rng = np.random.default_rng(rng)
    picked = np.empty((n_episodes, n_way), dtype=np.intp)
    rows = np.empty((n_episodes, n_way, per_class), dtype=np.intp)
    for e in range(n_episodes):
        picked[e] = rng.choice(len(classes), n_way, replace=False)
        for k, c in enumerate(picked[e]):
            rows[e, k] = rng.choice(members[c], per_class, replace=False)
    support = rows[:, :, :k_shot].reshape(n_episodes, -1)
    query = rows[:, :, k_shot:].reshape(n_episodes, -1)
    labels = np.arange(n_way, dtype=np.int32)
    return Episodes(
        X[support],
        np.broadcast_to(np.repeat(labels, k_shot), support.shape).copy(),
        X[query],
        np.broadcast_to(np.repeat(labels, n_query), query.shape).copy(),
        classes[picked],
    )
