"""Inter-tile traffic of a placement, in activation elements × mesh hops per example.

The flow rules live in `analogc.runtime.cost.dataflow` (the cost model counts the same
words and hops at run time); this module is the mapper's name for them.
"""

from __future__ import annotations

from analogc.runtime.cost.dataflow import block_flows, dense_edges, hops, overlap, traffic

__all__ = ["block_flows", "dense_edges", "hops", "overlap", "traffic"]
