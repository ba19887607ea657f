"""The runtime: the tile-program format, device physics, the chip, the cost model and training.

Sub-packages, each importing only those before it: format < physics < cost < chip < training.
The runtime never imports the mapper: the tile-program format is the contract between them.
"""
