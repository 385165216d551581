"""Reconstruct the capacity and utilization history of an OpenStack testbed from its databases."""

import polars as pl

__version__ = "0.3.0"

# Polars 2 runs plans on its streaming engine by default. On the bench sites it ran this pipeline's
# sorts, joins and windows about twice as slowly as the in-memory engine, with more memory, and a
# collect_all hung for good on the large site (docs/performance.md): the engine uses in-memory.
pl.Config.set_engine_affinity("in-memory")
