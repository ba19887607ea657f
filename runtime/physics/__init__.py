"""Device and periphery physics: PCM conductances, drift and noise, the 3T1C capacitor,
the DACs and ADCs, the counter-based random numbers, and a layer's device store.

devices (PCM), capacitor (3T1C cell), periphery (DAC/ADC in numpy), kernels (their
compiled twins and the generator), layer_devices (the per-cell arrays of one layer). To
change how drift works or how a PCM pair is programmed, look here. Imports only the
program format, never the chip, training or cost.
"""
