"""In-situ training on the chip (Ambrogio et al., Nature 2018) and its float baseline.

trainer (the loop, evaluation, the trained program), chain (which layers train), analog_layer
(one layer's reads, pulsed updates and transfers), read_kernel / update_kernel / loop_kernel
(the compiled paths), state and checkpoint (resume), float_sgd (the software baseline).
"""
