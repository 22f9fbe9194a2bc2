"""The state of a factorized layer P W' Q as plain NumPy arrays.

Vocabulary (Lee et al. 2021, with Keras orientation for the kernel):

* The layer's original weight is W (m x n: m outputs, n input coordinates);
  Keras stores its transpose, the kernel (n x m). For a convolution the input
  coordinates are the kh*kw*cin im2col positions of `kernel.reshape(-1, cout)`.
* Paper *columns* are input-side vectors (rows of the Keras kernel); paper
  *rows* are output-side vectors (columns of the Keras kernel plus the bias).
* `kernel` is W'^T: (groups_in, groups_out) = (n', m'). Only it, the bias and
  the Frobenius-normalization gain are trainable.
* Q (n' x n) has one non-zero per input coordinate k: coordinate k feeds
  column group `q_index[k]` with coefficient `q_coef[k]`.
* P (m x m') has one non-zero per output coordinate k: output k is
  `p_coef[k]` times row group `p_index[k]`.
* Between structural rebuilds fused groups stay in the arrays, switched off
  by `col_mask` / `row_mask` (0 = fused away), so shapes never change inside
  the compiled step.
* Features: the layer's output tensor has `features_out` channels;
  feature h is `activation(feature_scale[h] * z[feature_group[h]])` with z the
  pre-activation of the row groups. Without feature-space reduction there is
  one feature per output coordinate (`feature_group = p_index`,
  `feature_scale = p_coef`). With it (ReLU-family activations), output
  coordinates whose groups and signs agree share one feature, and the *next*
  layer reads original coordinate k as `in_scale[k] * input[in_index[k]]`.
* `in_index` / `in_scale` have one entry per original input channel (dense:
  per input coordinate; conv: per input channel).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass
class FactorState:
    """A snapshot of one factorized layer; every field is a NumPy array.

    Attributes:
        kernel: (groups_in, groups_out) float32, W'^T.
        bias: (groups_out,) float32, or None without bias.
        gain: () float32 Frobenius-normalization gain g, or None without FN.
        norm0: () float32 FN reference norm k, or None without FN.
        col_mask: (groups_in,) float32, 1 for live column groups.
        row_mask: (groups_out,) float32, 1 for live row groups.
        q_index: (input coordinates,) int32 column group of each coordinate.
        q_coef: (input coordinates,) float32.
        p_index: (outputs,) int32 row group of each output coordinate.
        p_coef: (outputs,) float32.
        in_index: (input channels,) int32 channel of the actual input that
            carries each original input channel.
        in_scale: (input channels,) float32.
        feature_group: (features_out,) int32.
        feature_scale: (features_out,) float32 (0 for a dead feature slot).
    """

    kernel: np.ndarray
    bias: np.ndarray | None
    gain: np.ndarray | None
    norm0: np.ndarray | None
    col_mask: np.ndarray
    row_mask: np.ndarray
    q_index: np.ndarray
    q_coef: np.ndarray
    p_index: np.ndarray
    p_coef: np.ndarray
    in_index: np.ndarray
    in_scale: np.ndarray
    feature_group: np.ndarray
    feature_scale: np.ndarray

    def copy(self) -> "FactorState":
        """Returns a deep copy."""
        return FactorState(
            **{
                f.name: None
                if getattr(self, f.name) is None
                else np.array(getattr(self, f.name), copy=True)
                for f in dataclasses.fields(self)
            }
        )

    @property
    def effective_kernel(self) -> np.ndarray:
        """W'^T as the layer computes with it: masked, Frobenius-normalized."""
        kernel = self.kernel * self.col_mask[:, None] * self.row_mask[None, :]
        if self.gain is None:
            return kernel
        norm = np.linalg.norm(kernel)
        return kernel * (self.gain * self.norm0 / max(norm, 1e-12))
