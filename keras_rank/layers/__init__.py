"""Factorized layers P W' Q (Lee et al. 2021, DLRA) and their state."""

from keras_rank.layers.factorized_conv import FactorizedConv2D
from keras_rank.layers.factorized_dense import FactorizedDense
from keras_rank.layers.state import FactorState

__all__ = ["FactorState", "FactorizedConv2D", "FactorizedDense"]
