"""The learned per-feature L2 strengths, sorted."""

import numpy as np

from skfarho.display._common import (
    fitted_step,
    import_pyplot,
    input_feature_names,
    panel_axes,
    row_mask,
)


class FeatureStrengthDisplay:
    """The learned per-feature L2 strengths, sorted, on a log scale.

    One bar per feature, from the least to the most shrunk; known relevant
    features in another color, and horizontal reference lines (e.g. the single
    strength a grid search chose). Build it with :meth:`from_estimator`; the
    constructor only stores the data.

    Parameters
    ----------
    alpha : array-like of shape (n_features,)
        Positive L2 strengths, one per feature; ``inf`` marks a dropped
        feature (the evidence recipe of ``learn="feature_alpha"`` prunes
        features), drawn as a hatched bar to the top of the axes.
    feature_names : array-like of str of shape (n_features,), default=None
        Names of the features; their indices when None.
    relevant : array-like of bool of shape (n_features,) or of int, default=None
        Mask or indices of the features known to be relevant.
    reference : dict of str to float, default=None
        Strengths drawn as horizontal lines, by label, e.g.
        ``{"GridSearchCV": 1 / C}``.
    estimator_name : str, default=None
        Label of the bars (when no ``relevant`` is given).

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes of the plot.
    figure_ : matplotlib Figure
        Figure holding the axes.
    bars_ : matplotlib BarContainer
        The bars, in sorted order (a dropped feature's bar reaches a ceiling
        a decade above the largest finite strength or reference).
    order_ : ndarray of int of shape (n_features,)
        Feature indices from the least to the most shrunk.
    reference_lines_ : dict of str to matplotlib Line2D
        The reference lines.

    See Also
    --------
    HyperparameterPathDisplay : The strengths along the outer loop.

    Examples
    --------
    >>> import numpy as np
    >>> from skfarho.display import FeatureStrengthDisplay
    >>> alpha = np.array([30.0, 0.2, 500.0, 0.5])
    >>> display = FeatureStrengthDisplay(
    ...     alpha=alpha, relevant=[1, 3], reference={"GridSearchCV": 2.0}).plot()
    >>> display.order_
    array([1, 3, 0, 2])
    >>> [label.get_text() for label in display.ax_.get_xticklabels()]
    ['1', '3', '0', '2']
    """

    def __init__(self, *, alpha, feature_names=None, relevant=None, reference=None,
                 estimator_name=None):
        self.alpha = alpha
        self.feature_names = feature_names
        self.relevant = relevant
        self.reference = reference
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, max_names=40, **kwargs):
        """Draw the sorted strengths.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        max_names : int, default=40
            Feature names label the bars when there are at most this many.
        **kwargs : dict
            Passed to ``Axes.bar``.

        Returns
        -------
        display : FeatureStrengthDisplay
            This display, with ``ax_``, ``figure_``, ``bars_`` and ``order_``.
        """
        plt = import_pyplot(f"{type(self).__name__}.plot")
        alpha = np.asarray(self.alpha, dtype=float).ravel()
        relevant = row_mask(self.relevant, alpha.size, "relevant")
        names = (np.arange(alpha.size) if self.feature_names is None
                 else np.asarray(self.feature_names))
        self.figure_, (self.ax_,) = panel_axes(plt, ax, 1, vertical=False,
                                               panel_size=(6.4, 3.6))
        self.order_ = np.argsort(alpha, kind="stable")
        ranks = np.arange(alpha.size)
        colors = "C0" if relevant is None else np.where(relevant[self.order_],
                                                        "C1", "C0")
        label = self.estimator_name or "learned alpha_"
        dropped = np.isinf(alpha[self.order_])
        finite = np.r_[alpha[np.isfinite(alpha)],
                       list((self.reference or {}).values())]
        ceiling = 10.0 * finite.max() if finite.size else 1.0
        heights = np.where(dropped, ceiling, alpha[self.order_])
        self.bars_ = self.ax_.bar(ranks, heights,
                                  **{"width": 0.8, "color": colors, "label": label,
                                     **kwargs})
        for bar in np.asarray(self.bars_.patches, dtype=object)[dropped]:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
        self.ax_.set_yscale("log")
        self.ax_.set_ylabel("L2 strength alpha_")
        self.ax_.set_xlabel("features, from least to most shrunk")
        if alpha.size <= max_names:
            self.ax_.set_xticks(ranks, [str(n) for n in names[self.order_]],
                                rotation=90, fontsize="small")
        handles = _relevant_handles(relevant) or [self.bars_]
        if dropped.any():
            from matplotlib.patches import Patch

            handles.append(Patch(facecolor="none", hatch="//", edgecolor="0.3",
                                 label=f"dropped ({int(dropped.sum())})"))
        self.reference_lines_ = {}
        for i, (name, value) in enumerate((self.reference or {}).items()):
            line = self.ax_.axhline(value, color=f"C{i + 2}", linestyle="--",
                                    label=name)
            self.reference_lines_[name] = line
            handles.append(line)
        if relevant is not None or self.reference_lines_ or dropped.any():
            self.ax_.legend(handles=handles, fontsize="small")
        return self

    @classmethod
    def from_estimator(cls, estimator, *, relevant=None, reference=None,
                       feature_names=None, ax=None, **kwargs):
        """Draw the learned strengths ``alpha_`` of a fitted estimator.

        Parameters
        ----------
        estimator : estimator or Pipeline
            A fitted skfarho estimator, or a pipeline ending in one.
        relevant : array-like of bool or of int, default=None
            Mask or indices of the features known to be relevant.
        reference : dict of str to float, default=None
            Strengths drawn as horizontal lines, by label.
        feature_names : array-like of str, default=None
            Names of the features; by default ``feature_names_in_`` (for a
            pipeline, the names its preceding steps output), else indices.
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : FeatureStrengthDisplay

        Examples
        --------
        >>> from sklearn.datasets import make_classification
        >>> from skfarho import HOLogisticRegression
        >>> from skfarho.display import FeatureStrengthDisplay
        >>> X, y = make_classification(n_samples=200, n_features=8,
        ...                            n_informative=3, shuffle=False,
        ...                            random_state=0)
        >>> model = HOLogisticRegression(learn=("feature_alpha",), outer_steps=5,
        ...                              random_state=0).fit(X, y)
        >>> display = FeatureStrengthDisplay.from_estimator(
        ...     model, relevant=[0, 1, 2], reference={"initial alpha": 1.0})
        >>> len(display.bars_)
        8
        """
        step = fitted_step(estimator, ["alpha_"])
        if feature_names is None:
            feature_names = input_feature_names(estimator, step)
        display = cls(alpha=step.alpha_, feature_names=feature_names,
                      relevant=relevant, reference=reference,
                      estimator_name=type(step).__name__)
        return display.plot(ax=ax, **kwargs)


def _relevant_handles(relevant):
    """Legend patches for the relevant and other features (none without a mask)."""
    if relevant is None:
        return []
    from matplotlib.patches import Patch

    n_relevant = int(relevant.sum())
    return [Patch(color="C1", label=f"relevant ({n_relevant})"),
            Patch(color="C0", label=f"other ({relevant.size - n_relevant})")]
