"""Graph-correct DLRA: links, fixed axes and Dropout owners follow the graph.

Each test plants exactly parallel or opposite columns/rows in factorized
layers of a small branching or chained model, runs the callback's fusion
(lambda1 = 0, a search every step, tiny thresholds) and checks that the
planted pairs fuse and the outputs stay the same: right after the fusions,
after the rebuild at compact shapes, and in the plain compact model.
"""

import keras
import numpy as np
import pytest

from keras_rank import models
from keras_rank.dlra import DLRA, DLRAConfig, fusion
from keras_rank.layers import FactorizedConv2D, FactorizedDense
from keras_rank.layers.factorize import factorize_model, to_plain_model
from keras_rank.training import Trainer

TOL = {"rtol": 1e-5, "atol": 1e-5}


# Non-zero biases, so that planted rows are parallel with their bias.
BIAS = keras.initializers.RandomUniform(0.05, 0.3)


def dense(units, name, activation=None):
    return FactorizedDense(
        units, activation=activation, bias_initializer=BIAS, name=name
    )


def relu_dense(units, name):
    return dense(units, name, activation="relu")


def relu_conv(filters, name):
    return FactorizedConv2D(
        filters, 2, activation="relu", bias_initializer=BIAS, name=name
    )


def plant_rows(layer, keep, drop, ratio):
    """Makes row group `drop` (bias included) exactly `ratio` times `keep`."""
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
    kernel[:, drop] = ratio * kernel[:, keep]
    bias[drop] = ratio * bias[keep]
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)


def plant_columns(layer, keep, drop, ratio):
    """Makes column group `drop` exactly `ratio` times column group `keep`."""
    kernel = layer.kernel.numpy()
    kernel[drop] = ratio * kernel[keep]
    layer.kernel.assign(kernel)


def sample(model, seed=0):
    shape = (16, *model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


class Run:
    """The DLRA callback driven through the trainer's hooks, no data."""

    def __init__(self, model, **overrides):
        settings = dict(
            lambda1=0.0,
            tau_cos=1e-4,
            tau_euc=1e-3,
            frobenius_norm=False,
            search_every=1,
        )
        settings.update(overrides)
        self.dlra = DLRA(DLRAConfig(**settings))
        self.trainer = Trainer(
            model,
            keras.optimizers.Adam(1e-3),
            loss_terms=self.dlra.loss_terms,
            callbacks=[self.dlra],
            verbose=0,
        )
        self.dlra.on_train_begin(self.trainer)
        self.dlra.on_epoch_begin(self.trainer, 0)

    @property
    def model(self):
        return self.trainer.model

    def links(self):
        layers = [layer.name for layer in self.dlra.editor.layers]
        return {layers[a]: layers[b] for a, b in self.dlra.editor.links.items()}

    def fixed(self):
        layers = [layer.name for layer in self.dlra.editor.layers]
        return {(layers[index], axis) for index, axis in self.dlra.search.fixed}

    def fuse_and_rebuild(self, steps):
        """Fuses for `steps` steps, then rebuilds; returns the fused dims.

        The outputs on one sample must stay those before the fusions, after
        the fusions, after the rebuild and in the plain compact model.
        """
        x = sample(self.model)
        before = self.model(x).numpy()
        for step in range(1, steps + 1):
            self.dlra.on_step_end(self.trainer, step, {})
        np.testing.assert_allclose(self.model(x).numpy(), before, **TOL)
        dims = {
            layer.name: fusion.live_counts(layer.factor_state())
            for layer in self.dlra.editor.layers
        }
        self.trainer.replace_model(self.dlra.on_epoch_end(self.trainer, 0, {}))
        np.testing.assert_allclose(self.model(x).numpy(), before, **TOL)
        plain = to_plain_model(self.model)
        np.testing.assert_allclose(plain(x).numpy(), before, **TOL)
        return dims


# --------------------------------------------------------------------------
# Branches: nothing is linked across them.


def concatenated_branches(width):
    """x -> a (relu), x -> b (relu), concatenate -> head: two branches."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((width,))
    joined = keras.layers.Concatenate(name="cat")(
        [relu_dense(6, "a")(inputs), relu_dense(6, "b")(inputs)]
    )
    model = keras.Model(inputs, dense(3, "head")(joined))
    plant_rows(model.get_layer("a"), keep=0, drop=1, ratio=2.0)
    plant_rows(model.get_layer("b"), keep=2, drop=3, ratio=-0.5)
    plant_columns(model.get_layer("head"), keep=0, drop=7, ratio=-3.0)  # a0 ~ b1
    return model


@pytest.mark.parametrize("fn", [False, True])
@pytest.mark.parametrize("width", [4, 6])  # input narrower than a, and as wide
def test_concatenated_branches_are_not_linked_and_fusions_keep_outputs(width, fn):
    run = Run(concatenated_branches(width), frobenius_norm=fn)
    assert run.links() == {}
    assert run.fixed() == {("a", "col"), ("b", "col"), ("head", "row")}

    dims = run.fuse_and_rebuild(steps=1)

    assert dims["a"] == {"groups_in": width, "groups_out": 5, "features_out": 6}
    assert dims["b"] == {"groups_in": width, "groups_out": 5, "features_out": 6}
    assert dims["head"]["groups_in"] == 11
    assert run.model.get_layer("a").kernel.shape == (width, 5)
    assert run.model.get_layer("head").kernel.shape == (11, 3)


def test_one_output_read_by_two_layers_is_not_linked():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    hidden = relu_dense(6, "a")(inputs)
    joined = keras.layers.Concatenate()(
        [relu_dense(5, "b")(hidden), relu_dense(5, "c")(hidden)]
    )
    model = keras.Model(inputs, dense(3, "head")(joined))
    plant_rows(model.get_layer("a"), keep=0, drop=1, ratio=2.0)
    plant_columns(model.get_layer("c"), keep=1, drop=4, ratio=-1.5)
    run = Run(model)
    assert run.links() == {}

    dims = run.fuse_and_rebuild(steps=1)

    assert dims["a"] == {"groups_in": 4, "groups_out": 5, "features_out": 6}
    assert dims["c"]["groups_in"] == 5


def test_layer_called_at_two_sites_is_not_linked():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4,))
    shared = relu_dense(6, "a")
    # b and c each read only the output of one call of a.
    left, right = relu_dense(6, "b")(shared(inputs)), relu_dense(6, "c")(shared(inputs))
    joined = keras.layers.Concatenate()([left, right])
    model = keras.Model(inputs, dense(3, "head")(joined))
    plant_rows(model.get_layer("a"), keep=0, drop=1, ratio=2.0)
    plant_columns(model.get_layer("head"), keep=0, drop=8, ratio=-2.0)
    run = Run(model)
    assert run.links() == {}

    dims = run.fuse_and_rebuild(steps=1)

    assert dims["a"] == {"groups_in": 4, "groups_out": 5, "features_out": 6}
    assert dims["head"]["groups_in"] == 11


def test_residual_add_links_the_inner_pair_and_fixes_the_head():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    inner = dense(6, "b")(relu_dense(8, "a")(inputs))
    added = keras.layers.Add()([inputs, inner])
    model = keras.Model(inputs, dense(3, "head")(added))
    a, b = model.get_layer("a"), model.get_layer("b")
    plant_rows(a, keep=0, drop=1, ratio=2.0)
    plant_rows(a, keep=2, drop=3, ratio=-0.5)
    plant_columns(b, keep=4, drop=7, ratio=-3.0)
    run = Run(model)
    assert run.links() == {"a": "b"}
    # head reads x through the weightless Add: its columns stay, as a's.
    assert run.fixed() == {("a", "col"), ("head", "col"), ("head", "row")}

    dims = run.fuse_and_rebuild(steps=2)

    # Two row fusions; the parallel pair shares a feature, the opposite not.
    assert dims["a"] == {"groups_in": 6, "groups_out": 6, "features_out": 7}
    assert dims["b"]["groups_in"] == 7
    assert run.model.get_layer("a").kernel.shape == (6, 6)
    assert run.model.get_layer("b").features_in == 7


# --------------------------------------------------------------------------
# Chains through channel-wise, positively homogeneous layers: linked.


PASS_THROUGH = {
    "dropout": ((2, 3), lambda: keras.layers.Dropout(0.25, name="mid")),
    "max_pooling_1d": ((4, 3), lambda: keras.layers.MaxPooling1D(2, name="mid")),
    "max_pooling_2d": ((4, 4, 3), lambda: keras.layers.MaxPooling2D(2, name="mid")),
    "max_pooling_3d": ((2, 2, 2, 3), lambda: keras.layers.MaxPooling3D(name="mid")),
    "average_pooling_1d": (
        (5, 3),
        lambda: keras.layers.AveragePooling1D(2, padding="same", name="mid"),
    ),
    "average_pooling_2d": (
        (4, 4, 3),
        lambda: keras.layers.AveragePooling2D(2, name="mid"),
    ),
    "average_pooling_3d": (
        (2, 2, 2, 3),
        lambda: keras.layers.AveragePooling3D(2, name="mid"),
    ),
    "zero_padding_1d": ((3, 3), lambda: keras.layers.ZeroPadding1D(1, name="mid")),
    "zero_padding_2d": ((3, 3, 3), lambda: keras.layers.ZeroPadding2D(1, name="mid")),
    "zero_padding_3d": (
        (1, 2, 2, 3),
        lambda: keras.layers.ZeroPadding3D(((1, 0), (0, 0), (0, 0)), name="mid"),
    ),
}


def chain_through(shape, middle):
    """a (relu) -> middle -> b (relu) -> flatten -> head, on inputs of `shape`."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input(shape)
    x = relu_dense(6, "b")(middle(relu_dense(6, "a")(inputs)))
    head = dense(3, "head")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, head)
    a = model.get_layer("a")
    plant_rows(a, keep=0, drop=1, ratio=2.0)
    plant_rows(a, keep=2, drop=3, ratio=-0.5)
    plant_columns(model.get_layer("b"), keep=1, drop=2, ratio=1.5)
    return model


@pytest.mark.parametrize("kind", sorted(PASS_THROUGH))
def test_chain_through_a_pass_through_layer_is_linked_and_fusions_keep_outputs(
    kind,
):
    shape, middle = PASS_THROUGH[kind]
    run = Run(chain_through(shape, middle()))
    assert run.links() == {"a": "b"}

    dims = run.fuse_and_rebuild(steps=2)

    # Two row fusions; the parallel pair shares a feature, the opposite not.
    assert dims["a"] == {"groups_in": 3, "groups_out": 4, "features_out": 5}
    assert dims["b"]["groups_in"] == 5
    assert run.model.get_layer("b").features_in == 5
    if kind == "dropout":  # eq. 14: the rate follows a's live features
        assert run.model.get_layer("mid").rate == pytest.approx(0.25 * 5 / 6)


@pytest.mark.parametrize(
    "shape, middle",
    [
        # Pools over a's output coordinates, not within each of them.
        ((4, 3), lambda: keras.layers.MaxPooling1D(2, data_format="channels_first")),
        # Its noise has one entry per channel of a's original width.
        ((2, 3), lambda: keras.layers.Dropout(0.25, noise_shape=(None, 1, 6))),
    ],
    ids=["channels_first_pooling", "dropout_with_channel_noise_shape"],
)
def test_chain_through_a_layer_that_fixes_the_channels_is_not_linked(shape, middle):
    run = Run(chain_through(shape, middle()))
    assert run.links() == {}

    dims = run.fuse_and_rebuild(steps=2)

    assert dims["a"] == {"groups_in": 3, "groups_out": 4, "features_out": 6}
    run.model(sample(run.model), training=True)  # the noise still fits


def test_convolutions_through_max_pooling_are_linked():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 1))
    x = relu_conv(6, "a")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = relu_conv(6, "b")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, dense(3, "head")(x))
    plant_rows(model.get_layer("a"), keep=0, drop=1, ratio=2.0)
    run = Run(model)
    assert run.links() == {"a": "b"}

    dims = run.fuse_and_rebuild(steps=1)

    assert dims["a"] == {"groups_in": 4, "groups_out": 5, "features_out": 5}
    assert run.model.get_layer("b").features_in == 5


# --------------------------------------------------------------------------
# Dropout owners and the zoo.


def test_dropout_rate_follows_the_layer_whose_features_it_reads():
    """drop_b reads b's features (b -> c); drop_in and drop_cat read none."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((6,))
    x = relu_dense(6, "b")(keras.layers.Dropout(0.4, name="drop_in")(inputs))
    x = relu_dense(6, "c")(keras.layers.Dropout(0.3, name="drop_b")(x))
    joined = keras.layers.Concatenate()([relu_dense(6, "a")(inputs), x])
    joined = keras.layers.Dropout(0.5, name="drop_cat")(joined)
    model = keras.Model(inputs, dense(3, "head")(joined))
    plant_rows(model.get_layer("a"), keep=0, drop=1, ratio=2.0)
    plant_rows(model.get_layer("b"), keep=2, drop=3, ratio=2.0)
    run = Run(model)
    assert run.links() == {"b": "c"}
    assert run.dlra.editor.initial["dropout"] == {"drop_b": ["b", 0.3]}

    dims = run.fuse_and_rebuild(steps=1)

    assert dims["b"]["features_out"] == 5 and dims["a"]["features_out"] == 6
    assert run.model.get_layer("drop_b").rate == pytest.approx(0.3 * 5 / 6)
    assert run.model.get_layer("drop_in").rate == pytest.approx(0.4)
    assert run.model.get_layer("drop_cat").rate == pytest.approx(0.5)


ZOO = {
    "mlp": (
        {f"dense_{i}": f"dense_{i + 1}" for i in range(1, 6)},
        {("dense_1", "col"), ("dense_6", "row")},
        {f"dropout_{i}": [f"dense_{i}", 0.2] for i in range(1, 6)},
    ),
    "lenet300": (
        {"dense_1": "dense_2", "dense_2": "dense_3"},
        {("dense_1", "col"), ("dense_3", "row")},
        {},
    ),
    "lenet5": (
        {"conv_1": "conv_2", "dense_1": "dense_2"},  # not conv_2 -> flatten -> dense
        {("conv_1", "col"), ("dense_2", "row")},
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_keep_their_links_fixed_axes_and_dropout_owners(name):
    links, fixed, owners = ZOO[name]
    run = Run(factorize_model(models.build_model(name)))
    assert run.links() == links
    assert run.fixed() == fixed
    assert run.dlra.editor.initial["dropout"] == owners
