"""Layers that keep a weight matrix in a compressed form.

* Factorized layers P W' Q (Lee et al. 2021, DLRA): ``FactorizedDense``,
  ``FactorizedConv2D`` and their ``FactorState``.
* Low-rank layers U V^T (Idelbayev & Carreira-Perpinan 2020, LC):
  ``LowRankDense``, ``LowRankConv2D`` (two conv schemes), the maths they
  share (``truncated_factors``, ``conv_kernel_as_matrix`` /
  ``conv_kernel_from_matrix``), their costs per unit of rank
  (``dense_rank_costs``, ``conv2d_rank_costs``) and
  ``low_rank_to_plain_model``.
"""

from keras_rank.core.layer_matrices import (
    SCHEMES,
    conv_kernel_as_matrix,
    conv_kernel_from_matrix,
)
from keras_rank.layers import matrices as _matrices  # noqa: F401 (registers)
from keras_rank.layers._low_rank import RankCosts, truncated_factors
from keras_rank.layers.factorized_conv import FactorizedConv2D
from keras_rank.layers.factorized_dense import FactorizedDense
from keras_rank.layers.low_rank_conv import LowRankConv2D, conv2d_rank_costs
from keras_rank.layers.low_rank_dense import LowRankDense, dense_rank_costs
from keras_rank.layers.plain import low_rank_to_plain_model
from keras_rank.layers.state import FactorState

__all__ = [
    "SCHEMES",
    "FactorState",
    "FactorizedConv2D",
    "FactorizedDense",
    "LowRankConv2D",
    "LowRankDense",
    "RankCosts",
    "conv2d_rank_costs",
    "conv_kernel_as_matrix",
    "conv_kernel_from_matrix",
    "dense_rank_costs",
    "low_rank_to_plain_model",
    "truncated_factors",
]
