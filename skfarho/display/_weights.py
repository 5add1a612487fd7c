"""The learned example weights: their histogram and the rows ranked by weight."""

import numpy as np

from skfarho.display._common import fitted_step, import_pyplot, panel_axes, row_mask


class SampleWeightDisplay:
    """The learned example weights: histogram and rows ranked by weight.

    Side by side: the histogram of the weights, the weights sorted from the
    lowest (the rows the outer loop trusts least) with the rows known to be
    mislabeled marked, and, when a per-row label quality is given, the label
    quality against the weight. Rows whose weight is NaN (never used for
    training, e.g. validation rows) are left out. Build it with
    :meth:`from_estimator`; the constructor only stores the data.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,)
        Learned weights; NaN for rows not used for training.
    mislabeled : array-like of bool of shape (n_samples,) or of int, \
default=None
        Mask or indices of the rows known to be mislabeled.
    label_quality : array-like of shape (n_samples,), default=None
        A per-row label quality score aligned with ``sample_weight``.
    estimator_name : str, default=None
        Title of the histogram.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes of the histogram.
    axes_ : ndarray of matplotlib Axes
        Histogram, ranked rows, then label quality when given.
    figure_ : matplotlib Figure
        Figure holding the axes.
    hist_ : tuple
        What ``Axes.hist`` returned: counts, bin edges, patches.
    ranked_line_ : matplotlib Line2D
        The sorted weights.
    order_ : ndarray of int
        Row indices of the used rows, from the lowest to the highest weight.
    mislabeled_points_ : matplotlib PathCollection or None
        The mislabeled rows on the ranked weights.
    quality_points_ : matplotlib PathCollection or None
        Label quality against weight.

    See Also
    --------
    HyperparameterPathDisplay : The weights' quantiles along the outer loop.

    Examples
    --------
    >>> import numpy as np
    >>> from skfarho.display import SampleWeightDisplay
    >>> weights = np.array([0.9, np.nan, 0.1, 0.8, 0.7, np.nan])
    >>> display = SampleWeightDisplay(sample_weight=weights,
    ...                               mislabeled=[2]).plot(bins=5)
    >>> display.order_
    array([2, 4, 3, 0])
    >>> display.mislabeled_points_.get_offsets().tolist()  # (rank, weight)
    [[1.0, 0.1]]
    """

    def __init__(self, *, sample_weight, mislabeled=None, label_quality=None,
                 estimator_name=None):
        self.sample_weight = sample_weight
        self.mislabeled = mislabeled
        self.label_quality = label_quality
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, bins=30, **kwargs):
        """Draw the histogram and the ranked rows.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            None: a new figure. One Axes: its area is split into the panels.
            A sequence: one Axes per panel (2, or 3 with ``label_quality``).
        bins : int or sequence, default=30
            Bins of the histogram.
        **kwargs : dict
            Passed to ``Axes.hist``.

        Returns
        -------
        display : SampleWeightDisplay
            This display, with ``ax_``, ``axes_``, ``figure_`` and the artists.
        """
        plt = import_pyplot(f"{type(self).__name__}.plot")
        weights = np.asarray(self.sample_weight, dtype=float).ravel()
        mislabeled = row_mask(self.mislabeled, weights.size, "mislabeled")
        used = np.isfinite(weights)
        self.order_ = np.flatnonzero(used)[np.argsort(weights[used], kind="stable")]
        n_panels = 2 if self.label_quality is None else 3
        self.figure_, self.axes_ = panel_axes(plt, ax, n_panels, vertical=False,
                                              panel_size=(4.0, 3.4))
        self.ax_ = self.axes_[0]
        self._histogram(weights[used], None if mislabeled is None
                        else mislabeled[used], bins, kwargs)
        self._ranked(weights, mislabeled)
        self.quality_points_ = None
        if self.label_quality is not None:
            self._quality(weights, used, mislabeled)
        return self

    def _histogram(self, weights, mislabeled, bins, kwargs):
        if mislabeled is None:
            self.hist_ = self.ax_.hist(weights, bins=bins,
                                       **{"color": "C0", **kwargs})
        else:
            self.hist_ = self.ax_.hist(
                [weights[~mislabeled], weights[mislabeled]], bins=bins,
                **{"stacked": True, "color": ["C0", "C3"],
                   "label": ["clean", "mislabeled"], **kwargs})
            self.ax_.legend(fontsize="small")
        self.ax_.set_xlabel("learned weight sample_weight_")
        self.ax_.set_ylabel(f"training rows (of {weights.size})")
        if self.estimator_name:
            self.ax_.set_title(self.estimator_name)

    def _ranked(self, weights, mislabeled):
        axes = self.axes_[1]
        ranks = np.arange(1, self.order_.size + 1)
        ranked = weights[self.order_]
        self.ranked_line_, = axes.plot(ranks, ranked, color="C0")
        self.mislabeled_points_ = None
        if mislabeled is not None:
            marked = mislabeled[self.order_]
            self.mislabeled_points_ = axes.scatter(
                ranks[marked], ranked[marked], color="C3", s=12, zorder=3,
                label=f"mislabeled ({int(marked.sum())})")
            axes.legend(fontsize="small")
        axes.set_xlabel("training rows, from the lowest weight")
        axes.set_ylabel("sample_weight_")

    def _quality(self, weights, used, mislabeled):
        axes = self.axes_[2]
        quality = np.asarray(self.label_quality, dtype=float).ravel()
        colors = "C0" if mislabeled is None else np.where(mislabeled[used], "C3", "C0")
        self.quality_points_ = axes.scatter(weights[used], quality[used], c=colors,
                                            s=8)
        axes.set_xlabel("sample_weight_")
        axes.set_ylabel("label_quality_")

    @classmethod
    def from_estimator(cls, estimator, *, mislabeled=None, ax=None, **kwargs):
        """Draw the learned example weights ``sample_weight_`` of an estimator.

        Adds the label quality panel when the estimator has ``label_quality_``.

        Parameters
        ----------
        estimator : estimator or Pipeline
            A fitted skfarho estimator, or a pipeline ending in one.
        mislabeled : array-like of bool or of int, default=None
            Mask or indices (rows given to ``fit``) of rows known to be
            mislabeled.
        ax : matplotlib Axes or array-like of Axes, default=None
            See :meth:`plot`.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : SampleWeightDisplay

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import make_classification
        >>> from skfarho import HOLogisticRegression
        >>> from skfarho.display import SampleWeightDisplay
        >>> X, y = make_classification(n_samples=200, n_features=5,
        ...                            random_state=0)
        >>> flipped = np.arange(0, 200, 10)
        >>> y[flipped] = 1 - y[flipped]
        >>> model = HOLogisticRegression(learn=("sample_weight",), outer_steps=5,
        ...                              random_state=0).fit(X, y)
        >>> display = SampleWeightDisplay.from_estimator(model, mislabeled=flipped)
        >>> display.order_.size == int(np.isfinite(model.sample_weight_).sum())
        True
        """
        step = fitted_step(estimator, ["sample_weight_"])
        display = cls(sample_weight=step.sample_weight_, mislabeled=mislabeled,
                      label_quality=getattr(step, "label_quality_", None),
                      estimator_name=type(step).__name__)
        return display.plot(ax=ax, **kwargs)
