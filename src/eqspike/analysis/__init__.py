"""Analysis and plots of trained networks and runs."""

from eqspike.analysis.plots import plot_training_curves, save_figure

__all__ = ["plot_training_curves", "save_figure"]
