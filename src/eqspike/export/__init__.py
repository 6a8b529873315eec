"""Export trained networks for neuromorphic toolchains (NIR)."""

from eqspike.export.nir_graph import export_nir, ttfs_graph, ttfs_weights_from_graph

__all__ = ["export_nir", "ttfs_graph", "ttfs_weights_from_graph"]
