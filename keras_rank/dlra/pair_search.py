"""The most parallel pair of every fusable (layer, axis), and RaRe on it.

An all-pairs Gram matrix finds the most parallel pair of each layer and
axis. `PairSearch` runs it every `search_every` steps and, for the fused
axis, after every fusion (the `DLRA` callback decides when); in between,
RaRe (whose value and gradient come from the minimising pair only) and the
fusion test use the cached pair. See docs/design/dlra.md for the measurement
behind the default.
"""

import numpy as np
import tensorflow as tf

from keras_rank.core.graph import MODEL_INPUT, MODEL_OUTPUT, ModelGraph, is_weightless
from keras_rank.dlra import rare

AXES = ("col", "row")


def axis_vectors(layer, axis: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns the (vectors, live mask) of a layer's columns or rows.

    Columns are the rows of the effective kernel; rows are its columns with
    the bias appended (rows of [W, b]).
    """
    kernel = layer.effective_kernel()
    if axis == "col":
        return kernel, layer.col_mask
    rows = tf.transpose(kernel)
    if layer.use_bias:
        rows = tf.concat([rows, (layer.bias * layer.row_mask)[:, None]], axis=1)
    return rows, layer.row_mask


def _live(mask) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(mask, tf.float32))


class PairSearch:
    """Caches the most parallel pair of each fusable (layer, axis) of a model.

    A layer is named by its index in `layers`; an axis is "col" or "row".
    Every per-axis tensor (pairs, eq. 16 weights, probe rows) follows the
    order of `axes`.

    Args:
        lambda1: Weight of the RaRe loss (eq. 18). When > 0 the loss is in
            the train step and leaves the fusion test's inputs in
            `probe_of_last_step`; otherwise `pairs_to_fuse` computes them.
        tau_cos: A pair fuses when 1 - |cos| < tau_cos ...
        tau_euc: ... and its magnitude-equalised distance < tau_euc.

    Attributes:
        layers: The bound model's factorized layers.
        fixed: The (layer index, axis) pairs that never fuse (section 4.5).
        axes: The (layer index, axis) pairs searched, in the loss and tested:
            those that may fuse before the next rebuild.
        probe_of_last_step: (axes, 3) rows ``[allowed, 1 - |cos|, D_euc]``
            of the cached pairs, written by `rare_loss` inside the step.
    """

    def __init__(self, lambda1: float, tau_cos: float, tau_euc: float):
        self.lambda1 = lambda1
        self.tau_cos = tau_cos
        self.tau_euc = tau_euc
        self.layers: list = []
        self.fixed: set[tuple[int, str]] = set()
        self.axes: list[tuple[int, str]] = []
        self._pairs: list[tf.Variable] = []

    def bind(self, layers: list, graph: ModelGraph) -> None:
        """Binds to the factorized `layers` of the model that `graph` reads.

        Creates the cached pairs, (0, 1) until the first search.
        """
        self.layers = layers
        self.fixed = self._fixed_axes(graph)
        self.axes = [
            (index, axis)
            for index in range(len(layers))
            for axis in AXES
            if self._may_fuse(index, axis)
        ]
        self._pairs = [
            tf.Variable([0, 1], dtype=tf.int32, trainable=False) for _ in self.axes
        ]
        self._refresh_fn = tf.function(self._refresh, autograph=False)
        self._probe_fn = tf.function(self.probe, autograph=False)
        self.probe_of_last_step = tf.Variable(
            tf.zeros((len(self.axes), 3)), trainable=False
        )
        # Per (layer, axis): 1 if the cached pair may fuse, and its eq. 16
        # weight. Set between steps (with every search), read by the step.
        self._axis_allowed = tf.Variable(tf.zeros(len(self.axes)), trainable=False)
        self._axis_weights = tf.Variable(tf.zeros(len(self.axes)), trainable=False)

    def _fixed_axes(self, graph: ModelGraph) -> set[tuple[int, str]]:
        """Returns the (index, axis) pairs that never fuse (section 4.5).

        The columns of a layer that reads a model input through weightless
        layers only (the input layer's), and the rows of a layer whose output
        reaches a model output through weightless layers only (the
        classifier's).
        """
        fixed = set()
        for index, layer in enumerate(self.layers):
            if MODEL_INPUT in graph.sources(layer, through=is_weightless):
                fixed.add((index, "col"))
            if MODEL_OUTPUT in graph.sinks(layer, through=is_weightless):
                fixed.add((index, "row"))
        return fixed

    def _may_fuse(self, index: int, axis: str) -> bool:
        """Whether (layer, axis) can become the longer axis before a rebuild.

        Axes that cannot are left out of the loss, the search and the test:
        an axis shorter than the other can only become the longer one if the
        other may shrink.
        """
        if (index, axis) in self.fixed:
            return False
        layer = self.layers[index]
        n_live = int(np.sum(layer.col_mask.numpy()))
        m_live = int(np.sum(layer.row_mask.numpy()))
        if self._axis_allowed_by_size(axis, n_live, m_live):
            return True
        mine = n_live if axis == "col" else m_live
        other_axis = "row" if axis == "col" else "col"
        return mine >= 2 and (index, other_axis) not in self.fixed

    @staticmethod
    def _axis_allowed_by_size(
        axis: str, n_live: tf.Tensor, m_live: tf.Tensor
    ) -> tf.Tensor:
        """Longer axis only (square: both), at least two live vectors."""
        mine, other = (n_live, m_live) if axis == "col" else (m_live, n_live)
        return tf.logical_and(mine >= other, mine >= 2)

    # --------------------------------------------------------------- search
    def refresh_all(self) -> None:
        """Searches the most parallel pair of every (layer, axis) in `axes`."""
        self._refresh_fn(tf.ones(len(self.axes), tf.bool))

    def refresh(self, searched) -> None:
        """Searches the most parallel pair of the (layer index, axis) `searched`.

        Args:
            searched: A collection of entries of `axes`, e.g. the keys of
                `pairs_to_fuse` once they are fused.
        """
        self._refresh_fn(tf.constant([key in searched for key in self.axes]))

    def _refresh(self, selected: tf.Tensor) -> None:
        """Searches the most parallel pair of each (layer, axis) `selected`.

        `selected` has one bool per entry of `axes`. Then sets, for every
        (layer, axis), whether its cached pair may fuse and its eq. 16
        weight: both change only between steps (searches, fusions), so the
        step itself only reads them.
        """
        for position, ((index, axis), pair) in enumerate(
            zip(self.axes, self._pairs, strict=True)
        ):
            layer = self.layers[index]

            def search(layer=layer, axis=axis, pair=pair):
                vectors, mask = axis_vectors(layer, axis)
                i, j, _ = rare.most_parallel_pair(vectors, mask)
                pair.assign(tf.stack([i, j]))
                return tf.constant(True)

            tf.cond(selected[position], search, lambda: tf.constant(False))
        if not self.axes:
            return
        counts = [
            (_live(layer.col_mask), _live(layer.row_mask)) for layer in self.layers
        ]
        sizes = [n_live * m_live for n_live, m_live in counts]
        total = 2.0 * tf.add_n(sizes)
        allowed, weights = [], []
        for (index, axis), pair in zip(self.axes, self._pairs, strict=True):
            layer = self.layers[index]
            mask = layer.col_mask if axis == "col" else layer.row_mask
            live = tf.logical_and(
                tf.gather(mask, pair[0]) > 0, tf.gather(mask, pair[1]) > 0
            )
            live = tf.logical_and(live, pair[0] != pair[1])
            ok = tf.cast(
                tf.logical_and(live, self._axis_allowed_by_size(axis, *counts[index])),
                tf.float32,
            )
            allowed.append(ok)
            weights.append(ok * sizes[index] / total)
        self._axis_allowed.assign(tf.stack(allowed))
        self._axis_weights.assign(tf.stack(weights))

    # ------------------------------------------------- RaRe and fusion test
    def _pair_products(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Dot products of the cached pair of each (layer, axis) in `axes`.

        Gathers only the two vectors of each pair (the step never builds the
        effective kernel again) and takes their 2 x 2 Gram product.

        Returns:
            ``(products, scales)``: (axes, 3) ``[u.u, v.v, u.v]`` and (axes,)
            the factor that turns the vectors' lengths into effective ones.
            Columns are taken without the Frobenius scale (the squared sine
            does not depend on it, and the gradient then skips the norm);
            rows carry the bias, so they are taken effective (scale 1).
        """
        products, scales = [], []
        for (index, axis), pair in zip(self.axes, self._pairs, strict=True):
            layer = self.layers[index]
            scale = layer.kernel_scale()
            if axis == "col":
                vectors = tf.gather(layer.kernel, pair) * layer.row_mask[None, :]
                scales.append(scale)
            else:
                # A product with a one-hot (groups_out, 2) matrix: its gradient
                # is a dense rank-2 update, cheaper than an axis-1 gather's.
                select = tf.one_hot(pair, tf.shape(layer.kernel)[1], dtype=scale.dtype)
                columns = tf.matmul(select, layer.kernel, transpose_b=True)
                vectors = scale * columns * layer.col_mask[None, :]
                if layer.use_bias:
                    bias = tf.gather(layer.bias, pair)[:, None]
                    vectors = tf.concat([vectors, bias], 1)
                scales.append(tf.ones_like(scale))
            gram = tf.matmul(vectors, vectors, transpose_b=True)
            products.append(tf.stack([gram[0, 0], gram[1, 1], gram[0, 1]]))
        return tf.stack(products), tf.stop_gradient(tf.stack(scales))

    def _pair_sines_and_probe(self) -> tuple[tf.Tensor, tf.Tensor]:
        """(axes,) squared sines of the cached pairs, and the probe rows.

        The probe rows are ``[allowed, 1 - |cos|, D_euc]`` for the fusion
        test, without gradient.
        """
        products, scales = self._pair_products()
        sin2, gap, distance = rare.pair_statistics(
            products[:, 0], products[:, 1], products[:, 2]
        )
        probe = tf.stack([self._axis_allowed, gap, distance * scales], axis=1)
        return sin2, tf.stop_gradient(probe)

    def probe(self) -> tf.Tensor:
        """Returns the (axes, 3) rows ``[allowed, 1 - |cos|, D_euc]`` now."""
        return self._pair_sines_and_probe()[1]

    def rare_loss(self) -> tf.Tensor:
        """Returns lambda1 * eq. 16 on the cached pairs (sin^2, docs/methods/dlra.md).

        Called inside the train step. Also writes the pairs' probe rows to
        `probe_of_last_step`, which the fusion test reads after the step: no
        second pass over the weights (they are the values before this step's
        update).
        """
        if not self.axes:
            return tf.constant(0.0)
        sin2, probe = self._pair_sines_and_probe()
        self.probe_of_last_step.assign(probe)
        return self.lambda1 * tf.reduce_sum(self._axis_weights * sin2)

    def pairs_to_fuse(self) -> dict[tuple[int, str], tuple[int, int]]:
        """Returns the cached pairs under both thresholds, in `axes` order.

        Returns:
            ``{(layer index, axis): (i, j)}`` for every (layer, axis) whose
            cached pair is allowed to fuse and has 1 - |cos| < tau_cos and
            D_euc < tau_euc.
        """
        if not self.axes:
            return {}
        if self.lambda1 > 0:
            probe = self.probe_of_last_step.numpy()
        else:
            probe = self._probe_fn().numpy()
        fusable = {}
        for (allowed, gap, distance), key, pair in zip(
            probe, self.axes, self._pairs, strict=True
        ):
            if allowed and gap < self.tau_cos and distance < self.tau_euc:
                i, j = (int(v) for v in pair.numpy())
                fusable[key] = (i, j)
        return fusable
