"""What a tile program and a target spec are: reading, writing and checking the files.

program (the .atp archive), program_check (its structural checks), spec (the target spec,
TOML), original_model (the reference model, its weights restored), replicas (layers held
in several copies), vocabulary (the names a program may use). Imports nothing else of the
runtime: the mapper writes these files and every other part of the runtime reads them.
"""
