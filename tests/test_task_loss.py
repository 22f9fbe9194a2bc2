import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_rank.core.errors import ConfigError
from keras_rank.layers import factorize
from keras_rank.training.strategy import make_strategy
from keras_rank.training.task_loss import (
    LOSSES,
    TaskLoss,
    check_task_loss_args,
    resolve_task_loss,
)

SPARSE, CATEGORICAL = LOSSES[1:]
CLASSES = 5


def _random_batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    logits = (2 * rng.normal(size=(n, CLASSES))).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=n).astype(np.int32)
    return labels, logits


def _outputs(logits, from_logits):
    return logits if from_logits else tf.nn.softmax(logits).numpy()


def _neg_log_softmax(labels, logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels]


def _functional(last_layer, hidden_activation="relu", name="clf"):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(6, activation=hidden_activation, name="hidden")(inputs)
    return keras.Model(inputs, last_layer(x), name=name)


# ------------------------------------------------------------------ TaskLoss


@pytest.mark.parametrize("from_logits", [True, False])
def test_per_example_loss_equals_keras_losses_and_closed_form(from_logits):
    labels, logits = _random_batch()
    outputs = _outputs(logits, from_logits)
    expected = _neg_log_softmax(labels, logits)
    sparse = TaskLoss(SPARSE, from_logits).per_example_loss(labels, outputs)
    categorical = TaskLoss(CATEGORICAL, from_logits).per_example_loss(labels, outputs)
    keras_sparse = keras.losses.SparseCategoricalCrossentropy(
        from_logits=from_logits, reduction=None
    )(labels, outputs)
    keras_categorical = keras.losses.CategoricalCrossentropy(
        from_logits=from_logits, reduction=None
    )(np.eye(CLASSES, dtype=np.float32)[labels], outputs)

    assert sparse.shape == categorical.shape == (len(labels),)
    np.testing.assert_allclose(sparse, keras_sparse, rtol=1e-6)
    np.testing.assert_allclose(categorical, keras_categorical, rtol=1e-6)
    np.testing.assert_allclose(sparse, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(categorical, sparse, rtol=1e-6)


@pytest.mark.parametrize("from_logits", [True, False])
def test_categorical_takes_one_hot_labels_like_class_ids(from_logits):
    labels, logits = _random_batch(seed=1)
    outputs = _outputs(logits, from_logits)
    one_hot = np.eye(CLASSES, dtype=np.float32)[labels]
    task = TaskLoss(CATEGORICAL, from_logits)
    np.testing.assert_allclose(
        task.per_example_loss(one_hot, outputs),
        task.per_example_loss(labels, outputs),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(
        task.correct(one_hot, outputs), task.correct(labels, outputs)
    )


@pytest.mark.parametrize("kind", [SPARSE, CATEGORICAL])
def test_correct_is_one_where_argmax_is_the_label(kind):
    outputs = np.array(
        [[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]],
        dtype=np.float32,
    )
    labels = np.array([1, 2, 2, 0], dtype=np.int32)
    correct = TaskLoss(kind, from_logits=False).correct(labels, outputs)
    assert correct.dtype == tf.float32
    np.testing.assert_array_equal(correct, [1.0, 0.0, 1.0, 0.0])


def test_task_loss_runs_in_a_replica_step_of_mirrored_strategy():
    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    labels, logits = _random_batch(seed=2)
    task = TaskLoss(CATEGORICAL, from_logits=True)

    def replica_step(labels, outputs):
        return tf.stack(
            [
                tf.reduce_sum(task.per_example_loss(labels, outputs)),
                tf.reduce_sum(task.correct(labels, outputs)),
            ]
        )

    @tf.function(autograph=False)
    def step(labels, outputs):
        sums = strategy.run(replica_step, args=(labels, outputs))
        return strategy.reduce("SUM", sums, axis=None)

    got = step(tf.constant(labels), tf.constant(logits)).numpy()
    want = 2 * replica_step(labels, logits).numpy()  # every replica saw the batch
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sparse_loss_refuses_one_hot_labels():
    labels, logits = _random_batch()
    with pytest.raises(ConfigError, match="use loss='categorical_crossentropy'"):
        TaskLoss(SPARSE).per_example_loss(np.eye(CLASSES)[labels], logits)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "auto"}, r"Expected kind in .*Received: kind='auto'"),
        ({"kind": "mse"}, r"Expected kind in .*Received: kind='mse'"),
        ({"from_logits": "true"}, r"from_logits in \(True, False\).*'true'"),
    ],
)
def test_task_loss_refuses_bad_fields(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TaskLoss(**kwargs)


# ------------------------------------------------------------------ resolver


@pytest.mark.parametrize(
    "make_last, from_logits",
    [
        (lambda x: keras.layers.Dense(CLASSES, name="out")(x), True),
        (lambda x: keras.layers.Dense(CLASSES, "linear", name="out")(x), True),
        (lambda x: keras.layers.Dense(CLASSES, "softmax", name="out")(x), False),
        (
            lambda x: keras.layers.Softmax()(keras.layers.Dense(CLASSES)(x)),
            False,
        ),
        (
            lambda x: keras.layers.Activation("softmax")(
                keras.layers.Dense(CLASSES)(x)
            ),
            False,
        ),
        (
            lambda x: keras.layers.Activation("linear")(keras.layers.Dense(CLASSES)(x)),
            True,
        ),
    ],
    ids=["dense", "dense_linear", "dense_softmax", "softmax", "act_softmax", "act_lin"],
)
def test_resolver_reads_the_output_layer_of_functional_models(make_last, from_logits):
    model = _functional(make_last)
    assert resolve_task_loss(model) == TaskLoss(SPARSE, from_logits)
    assert resolve_task_loss(model, loss=CATEGORICAL) == TaskLoss(
        CATEGORICAL, from_logits
    )
    explicit = "true" if from_logits else "false"
    assert resolve_task_loss(model, from_logits=explicit) == TaskLoss(
        SPARSE, from_logits
    )
    # Deserialized activations are the same functions: a restored model
    # (checkpoint, model.keras) resolves alike.
    restored = keras.Model.from_config(model.get_config())
    assert resolve_task_loss(restored) == TaskLoss(SPARSE, from_logits)


@pytest.mark.parametrize("activation, from_logits", [("softmax", False), (None, True)])
def test_resolver_reads_sequential_models_built_or_not(activation, from_logits):
    layers = [
        keras.layers.Dense(6, activation="relu"),
        keras.layers.Dense(CLASSES, activation=activation),
    ]
    unbuilt = keras.Sequential(layers)
    built = keras.Sequential([keras.Input((4,)), *layers])
    for model in (unbuilt, built):
        assert resolve_task_loss(model).from_logits is from_logits


def test_resolver_follows_a_model_nested_at_the_output():
    inner = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(CLASSES, activation="softmax")]
    )
    assert resolve_task_loss(_functional(inner)).from_logits is False


@pytest.mark.parametrize("activation, from_logits", [("softmax", False), (None, True)])
def test_resolver_reads_factorized_dense_and_conv(activation, from_logits):
    dense = factorize.factorize_model(
        _functional(keras.layers.Dense(CLASSES, activation=activation, name="out"))
    )
    assert type(dense.get_layer("out")).__name__ == "FactorizedDense"
    inputs = keras.Input((4, 4, 2))
    conv = factorize.factorize_model(
        keras.Model(
            inputs,
            keras.layers.Conv2D(CLASSES, 4, activation=activation, name="out")(inputs),
        )
    )
    assert type(conv.get_layer("out")).__name__ == "FactorizedConv2D"
    for model in (dense, conv):
        assert resolve_task_loss(model) == TaskLoss(SPARSE, from_logits)


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.out = keras.layers.Dense(CLASSES, activation="softmax")

    def call(self, inputs):
        return self.out(inputs)


@pytest.mark.parametrize(
    "make_model, found",
    [
        (
            lambda: _functional(keras.layers.Dense(CLASSES, "sigmoid", name="out")),
            r"layer 'out' \(Dense\) with activation 'sigmoid'",
        ),
        (
            lambda: _functional(keras.layers.Dense(CLASSES, "relu", name="out")),
            r"layer 'out' \(Dense\) with activation 'relu'",
        ),
        (
            lambda: _functional(keras.layers.Dropout(0.1, name="drop")),
            r"layer 'drop' \(Dropout\), which has no activation attribute",
        ),
        (
            lambda: _functional(keras.layers.Softmax(axis=0, name="sm")),
            r"layer 'sm' \(Softmax\) over axis=0",
        ),
        (_Subclassed, "without a functional graph"),
    ],
    ids=["sigmoid", "relu", "no_activation", "softmax_axis0", "subclassed"],
)
def test_resolver_refuses_unknown_outputs_unless_told(make_model, found):
    model = make_model()
    with pytest.raises(ConfigError, match=found) as error:
        resolve_task_loss(model)
    assert "Supported: a layer with activation 'softmax'" in str(error.value)
    assert "Received: from_logits='auto'" in str(error.value)
    assert resolve_task_loss(model, from_logits="true") == TaskLoss(SPARSE, True)
    assert resolve_task_loss(model, from_logits="false") == TaskLoss(SPARSE, False)


def test_resolver_never_feeds_softmax_outputs_to_a_from_logits_loss():
    softmax = _functional(keras.layers.Dense(CLASSES, "softmax", name="out"))
    with pytest.raises(
        ConfigError,
        match=r"outputs probabilities .*from_logits='true': a softmax output is "
        "never fed to a from-logits loss",
    ):
        resolve_task_loss(softmax, from_logits="true")


def test_resolver_refuses_logits_for_a_loss_on_probabilities():
    linear = _functional(keras.layers.Dense(CLASSES, name="out"))
    with pytest.raises(
        ConfigError,
        match=r"outputs logits \(its output comes from layer 'out' \(Dense\) with "
        r"a linear activation\), but from_logits='false'",
    ):
        resolve_task_loss(linear, from_logits="false")


def _two_outputs(x):
    return [keras.layers.Dense(CLASSES)(x), keras.layers.Dense(2)(x)]


@pytest.mark.parametrize(
    "make_outputs, described",
    [
        (_two_outputs, "list of 2 tensor"),
        (lambda x: [keras.layers.Dense(CLASSES)(x)], "list of 1 tensor"),
        (lambda x: {"y": keras.layers.Dense(CLASSES)(x)}, "dict of 1 tensor"),
    ],
)
def test_resolver_refuses_models_without_a_single_output_tensor(
    make_outputs, described
):
    model = _functional(make_outputs)
    with pytest.raises(ConfigError, match=f"single output tensor.*{described}"):
        resolve_task_loss(model, from_logits="true")


@pytest.mark.parametrize(
    "loss, from_logits, match",
    [
        ("mse", "auto", r"Expected loss in .*Received: loss='mse'"),
        ("auto", True, r"Expected from_logits in .*Received: from_logits=True"),
        ("auto", "yes", r"Expected from_logits in .*Received: from_logits='yes'"),
    ],
)
def test_bad_choices_name_the_argument(loss, from_logits, match):
    with pytest.raises(ConfigError, match=match):
        check_task_loss_args(loss, from_logits)
    model = _functional(keras.layers.Dense(CLASSES))
    with pytest.raises(ConfigError, match=match):
        resolve_task_loss(model, loss=loss, from_logits=from_logits)


# ------------------------------------- a softmax model trains on the right loss


@pytest.mark.parametrize("kind", ["auto", SPARSE, CATEGORICAL])
def test_softmax_model_gets_the_loss_and_gradients_of_its_logits(kind):
    keras.utils.set_random_seed(0)
    logits_model = _functional(keras.layers.Dense(CLASSES, name="out"))
    dense_softmax = _functional(keras.layers.Dense(CLASSES, "softmax", name="out"))
    dense_softmax.set_weights(logits_model.get_weights())
    # Shares the logits model's layers and weights, then applies Softmax.
    softmax_layer = keras.Model(
        logits_model.input, keras.layers.Softmax()(logits_model.output)
    )
    rng = np.random.default_rng(3)
    images = rng.normal(size=(32, 4)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=32).astype(np.int32)

    # Keras's TF backend takes the logits back from a tensor its softmax made
    # (tagged `_keras_logits`, or a Softmax op in a graph), whatever
    # from_logits says. tf.identity drops that, as does any op after the
    # softmax: the untagged case checks the loss on the probabilities.
    def loss_and_grads(model, untag):
        task = resolve_task_loss(model, loss=kind)
        with tf.GradientTape() as tape:
            outputs = model(images)
            if untag:
                outputs = tf.identity(outputs)
            loss = tf.reduce_mean(task.per_example_loss(labels, outputs))
        return loss.numpy(), [g.numpy() for g in tape.gradient(loss, model.weights)]

    want_loss, want_grads = loss_and_grads(logits_model, untag=False)
    for model in (dense_softmax, softmax_layer):
        assert resolve_task_loss(model).from_logits is False
        for untag in (False, True):
            loss, grads = loss_and_grads(model, untag)
            np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
            for grad, want in zip(grads, want_grads, strict=True):
                np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)
    # The loss the engine hard-wired, on probabilities without the tag.
    wrong = keras.losses.sparse_categorical_crossentropy(
        labels, tf.identity(dense_softmax(images)), from_logits=True
    )
    assert abs(float(tf.reduce_mean(wrong)) - want_loss) > 0.1
