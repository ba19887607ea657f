"""The inference chip: tiles holding the programmed devices, the executor that runs a
tile program, the digital periphery around the tiles and the host's onnxruntime segments.

chip (the executor), tiles (a tile's device state), tile_reads (a layer's matrix
products), im2col (a convolution's patches), activations, host (onnxruntime segments),
infer (batching and accuracy), export (the chip's weights back into ONNX).
"""
