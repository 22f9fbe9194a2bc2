"""Tests of keras_rank.core.graph: who feeds whom, read from the model's graph."""

import keras
import pytest

from keras_rank.core.errors import ConfigError
from keras_rank.core.graph import (
    MODEL_INPUT,
    MODEL_OUTPUT,
    Chain,
    ModelGraph,
    is_weightless,
)

Dense = keras.layers.Dense


def never(layer):
    return False


def is_dropout(layer):
    return isinstance(layer, keras.layers.Dropout)


def names(found):
    return {getattr(item, "name", item) for item in found}


def chain_model():
    """x -> flatten -> a -> drop -> b -> c (output)."""
    inputs = keras.Input((2, 3))
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = Dense(4, activation="relu", name="a")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    x = Dense(4, name="b")(x)
    return keras.Model(inputs, Dense(2, name="c")(x))


def test_chain_successors_sources_and_sinks():
    model = chain_model()
    graph = ModelGraph(model)
    a, drop, b, c = (model.get_layer(n) for n in ("a", "drop", "b", "c"))

    assert graph.exclusive_successor(a, through=is_dropout) == Chain(b, (drop,))
    assert graph.exclusive_successor(a, through=never) == Chain(drop, ())
    assert graph.exclusive_successor(b, through=never) == Chain(c, ())
    assert graph.exclusive_successor(c, through=never) is None  # a model output
    assert graph.sources(a, through=is_weightless) == [MODEL_INPUT]
    assert graph.sources(a, through=never) == [model.get_layer("flatten")]
    assert graph.sources(b, through=is_weightless) == [a]
    assert graph.sinks(a, through=is_weightless) == [b]
    assert graph.sinks(c, through=is_weightless) == [MODEL_OUTPUT]
    assert [graph.call_count(layer) for layer in (a, drop, b, c)] == [1, 1, 1, 1]
    assert graph.call_count(Dense(3)) == 0


def test_concatenated_branches_have_no_exclusive_successor():
    inputs = keras.Input((4,))
    a = Dense(6, activation="relu", name="a")
    b = Dense(6, activation="relu", name="b")
    joined = keras.layers.Concatenate(name="cat")([a(inputs), b(inputs)])
    head = Dense(3, name="head")
    model = keras.Model(inputs, head(joined))
    graph = ModelGraph(model)

    assert graph.exclusive_successor(a, through=never) is None  # cat reads two
    assert graph.exclusive_successor(a, through=is_weightless) is None
    assert names(graph.sources(head, through=is_weightless)) == {"a", "b"}
    assert names(graph.sources(head, through=never)) == {"cat"}
    assert graph.sources(b, through=is_weightless) == [MODEL_INPUT]
    assert graph.sinks(a, through=is_weightless) == [head]


def test_residual_add_reaches_input_and_output_through_weightless_layers():
    inputs = keras.Input((6,))
    a = Dense(6, activation="relu", name="a")
    b = Dense(6, name="b")
    added = keras.layers.Add(name="add")([inputs, b(a(inputs))])
    model = keras.Model(inputs, added)
    graph = ModelGraph(model)

    assert graph.exclusive_successor(a, through=never) == Chain(b, ())
    assert graph.exclusive_successor(b, through=never) is None  # add reads two
    assert graph.sinks(b, through=is_weightless) == [MODEL_OUTPUT]
    assert graph.sinks(a, through=is_weightless) == [b]
    assert names(graph.sources(model.get_layer("add"), through=never)) == {
        MODEL_INPUT,
        "b",
    }


def test_output_read_by_two_layers_has_no_exclusive_successor():
    inputs = keras.Input((4,))
    a = Dense(6, activation="relu", name="a")
    b, c = Dense(5, name="b"), Dense(5, name="c")
    hidden = a(inputs)
    model = keras.Model(inputs, [b(hidden), c(hidden)])
    graph = ModelGraph(model)

    assert graph.exclusive_successor(a, through=never) is None
    assert names(graph.sinks(a, through=never)) == {"b", "c"}
    assert graph.sinks(b, through=never) == [MODEL_OUTPUT]


def test_output_that_is_also_a_model_output_has_no_exclusive_successor():
    inputs = keras.Input((4,))
    a, b = Dense(6, activation="relu", name="a"), Dense(3, name="b")
    hidden = a(inputs)
    model = keras.Model(inputs, [hidden, b(hidden)])
    graph = ModelGraph(model)

    assert graph.exclusive_successor(a, through=never) is None
    assert names(graph.sinks(a, through=never)) == {MODEL_OUTPUT, "b"}


def test_shared_layers_have_no_exclusive_successor():
    first, second = keras.Input((4,)), keras.Input((4,))
    shared = Dense(4, activation="relu", name="shared")
    b = Dense(4, name="b")
    drop = keras.layers.Dropout(0.1, name="drop")  # called at two sites too
    c, d = Dense(4, name="c"), Dense(4, name="d")
    left = b(shared(first))
    right = shared(second)
    through_drop = [d(drop(c(first))), b(drop(right))]
    model = keras.Model([first, second], [left, *through_drop])
    graph = ModelGraph(model)

    assert graph.call_count(shared) == 2 and graph.call_count(b) == 2
    assert graph.exclusive_successor(shared, through=never) is None
    assert graph.exclusive_successor(c, through=is_dropout) is None  # shared drop
    assert graph.exclusive_successor(c, through=never) is None
    assert names(graph.sources(b, through=is_weightless)) == {"shared"}


def test_calls_in_another_model_are_ignored():
    a, b = Dense(4, activation="relu", name="a"), Dense(3, name="b")
    first = keras.Input((4,))
    other = keras.Model(first, b(a(first)))
    second = keras.Input((4,))
    model = keras.Model(second, b(a(second)))
    graph = ModelGraph(model)

    assert len(a._inbound_nodes) == 2  # both models' calls
    assert graph.call_count(a) == 1
    assert graph.exclusive_successor(a, through=never) == Chain(b, ())
    assert ModelGraph(other).call_count(b) == 1


def test_sequential_model_and_non_layer_operations():
    sequential = keras.Sequential(
        [keras.Input((5,)), Dense(4, name="a"), keras.layers.Dropout(0.1), Dense(2)]
    )
    graph = ModelGraph(sequential)
    a = sequential.get_layer("a")
    last = sequential.layers[-1]
    assert graph.exclusive_successor(a, through=is_dropout).successor is last
    assert graph.sources(a, through=is_weightless) == [MODEL_INPUT]

    inputs = keras.Input((5,))
    a, b = Dense(4, name="a"), Dense(2, name="b")
    scaled = keras.ops.multiply(a(inputs), 2.0)  # an operation, not a layer
    graph = ModelGraph(keras.Model(inputs, b(scaled)))
    assert graph.sources(b, through=is_weightless) == [a]
    (operation,) = graph.sources(b, through=never)
    assert not isinstance(operation, keras.layers.Layer)


def test_is_weightless_ignores_seed_state():
    dropout = keras.layers.Dropout(0.5)
    dropout.build((None, 3))
    assert dropout.variables and is_weightless(dropout)  # seed generator state
    dense = Dense(2)
    dense.build((None, 3))
    assert not is_weightless(dense)
    assert is_weightless(keras.layers.Concatenate())


def test_models_without_a_graph_and_layers_not_called_are_rejected():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ConfigError, match="built functional or Sequential.*Subclass"):
        ModelGraph(Subclassed())
    with pytest.raises(ConfigError, match="built functional or Sequential"):
        ModelGraph(keras.Sequential([Dense(2)]))
    graph = ModelGraph(chain_model())
    with pytest.raises(ConfigError, match="layer='stray'"):
        graph.sources(Dense(2, name="stray"), through=never)
    with pytest.raises(ConfigError, match="layer='stray'"):
        graph.sinks(Dense(2, name="stray"), through=never)
