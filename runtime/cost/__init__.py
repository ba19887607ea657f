"""The cost model: exact operation counts of a program, priced with the target spec.

opcounts (counts per phase, layer and tile), replica_counts (with copies and reads per
example), periphery_ops (digital operations per activation), dataflow (flows between blocks on the mesh, shared with the mapper), host_flops
(floating-point work of host segments), pricing (energy, time and area from the counts).
"""
