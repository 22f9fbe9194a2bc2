"""Who feeds whom in a built Keras model, read from its functional graph.

Keras records every call of a layer on symbolic tensors as a *node*: the
tensors it read, the layer, the tensors it produced. A functional model (and
a built Sequential one, which holds a functional model) is the set of nodes
between its symbolic inputs and outputs. :class:`ModelGraph` indexes those
nodes once and answers questions about layers in that graph:

* :meth:`ModelGraph.calls`, :meth:`ModelGraph.producer`,
  :meth:`ModelGraph.readers`, :meth:`ModelGraph.is_output`: the nodes
  themselves, for walks of one's own (`keras_rank.core.channel_groups`);
* :meth:`ModelGraph.call_count`: how many times the model calls a layer;
* :meth:`ModelGraph.sources`: where a layer's input comes from, looking
  through layers a predicate accepts (model inputs included);
* :meth:`ModelGraph.sinks`: where a layer's output goes, likewise (model
  outputs included);
* :meth:`ModelGraph.exclusive_successor`: the one layer that reads a layer's
  output and nothing else, through unshared, unbranched layers a predicate
  accepts.

The predicates (which layers to look through) come from the caller, so the
module knows nothing about any compression method. Operations that are not
layers (``keras.ops`` calls in a functional model) are nodes like any other.
"""

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

import keras

from keras_rank.core.errors import ConfigError

MODEL_INPUT = "<model input>"
"""Returned by :meth:`ModelGraph.sources` for a model input."""

MODEL_OUTPUT = "<model output>"
"""Returned by :meth:`ModelGraph.sinks` for a model output."""

Predicate = Callable[[Any], bool]


def is_weightless(layer: Any) -> bool:
    """Tells whether a layer (or operation) has no weights.

    Random-seed state (Dropout's seed generator) is not a weight.
    """
    return not getattr(layer, "weights", ())


@dataclasses.dataclass(frozen=True)
class Chain:
    """A layer's output flowing into exactly one other layer.

    Attributes:
        successor: The layer that finally reads the output.
        between: The layers the output passed through on its way, in order.
    """

    successor: Any
    between: tuple[Any, ...]


class ModelGraph:
    """The call graph of a built functional or Sequential Keras model.

    Only the model's own calls count: a layer also called in another model
    has those calls ignored.

    Args:
        model: A built functional or Sequential model.

    Raises:
        ConfigError: If the model has no symbolic inputs and outputs (a
            subclassed model, or a Sequential model that is not built).
    """

    def __init__(self, model: keras.Model):
        inputs = getattr(model, "inputs", None)
        outputs = getattr(model, "outputs", None)
        if not inputs or not outputs:
            raise ConfigError(
                "Expected a built functional or Sequential model. Received: "
                f"model {model.name!r} of type {type(model).__name__} without "
                "symbolic inputs and outputs"
            )
        self._input_ids = {id(tensor) for tensor in inputs}
        self._output_ids = {id(tensor) for tensor in outputs}
        self._producer: dict[int, Any] = {}
        self._readers: dict[int, list] = collections.defaultdict(list)
        self._calls: dict[int, list] = collections.defaultdict(list)
        for node in self._nodes(outputs):
            self._calls[id(node.operation)].append(node)
            for tensor in node.output_tensors:
                self._producer[id(tensor)] = node
            for tensor in node.input_tensors:
                self._readers[id(tensor)].append(node)

    def _nodes(self, outputs: list) -> list:
        """Returns every node on a path from the model's inputs to `outputs`."""
        nodes, seen, stack = [], set(), list(outputs)
        while stack:
            tensor = stack.pop()
            if id(tensor) in self._input_ids:
                continue
            history = tensor._keras_history
            node = history.operation._inbound_nodes[history.node_index]
            if id(node) in seen:
                continue
            seen.add(id(node))
            nodes.append(node)
            stack.extend(node.input_tensors)
        return nodes

    def calls(self, layer: Any) -> list:
        """Returns the nodes of `layer`'s calls in the model (none: not in it)."""
        return list(self._calls.get(id(layer), ()))

    def producer(self, tensor: Any) -> Any:
        """Returns the node that produced `tensor`; None for a model input."""
        return None if id(tensor) in self._input_ids else self._producer[id(tensor)]

    def readers(self, tensor: Any) -> list:
        """Returns the nodes that read `tensor`."""
        return list(self._readers.get(id(tensor), ()))

    def is_output(self, tensor: Any) -> bool:
        """Tells whether `tensor` is an output of the model."""
        return id(tensor) in self._output_ids

    def call_count(self, layer: Any) -> int:
        """Returns how many times the model calls `layer` (0: not in it)."""
        return len(self._calls.get(id(layer), ()))

    def sources(self, layer: Any, through: Predicate) -> list:
        """Returns where `layer`'s inputs come from, looking through `through`.

        From every input tensor of every call of `layer`, walks up the graph
        across layers for which `through(layer)` is true (along all their
        inputs) and collects what stops the walk: the first layer for which
        it is false, or :data:`MODEL_INPUT`.

        Args:
            layer: A layer of the model.
            through: Which layers to look through.

        Returns:
            Layers and :data:`MODEL_INPUT`, each once (in no set order).
        """
        found: dict[int, Any] = {}
        seen: set[int] = set()
        stack = [t for node in self._calls_of(layer) for t in node.input_tensors]
        while stack:
            tensor = stack.pop()
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            if id(tensor) in self._input_ids:
                found.setdefault(id(MODEL_INPUT), MODEL_INPUT)
                continue
            node = self._producer[id(tensor)]
            if through(node.operation):
                stack.extend(node.input_tensors)
            else:
                found.setdefault(id(node.operation), node.operation)
        return list(found.values())

    def sinks(self, layer: Any, through: Predicate) -> list:
        """Returns where `layer`'s outputs go, looking through `through`.

        From every output tensor of every call of `layer`, walks down the
        graph across layers for which `through(layer)` is true (along all
        their outputs) and collects what stops the walk: the first layer for
        which it is false, and :data:`MODEL_OUTPUT` for every tensor reached
        that is a model output.

        Args:
            layer: A layer of the model.
            through: Which layers to look through.

        Returns:
            Layers and :data:`MODEL_OUTPUT`, each once (in no set order).
        """
        found: dict[int, Any] = {}
        seen: set[int] = set()
        stack = [t for node in self._calls_of(layer) for t in node.output_tensors]
        while stack:
            tensor = stack.pop()
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            if id(tensor) in self._output_ids:
                found.setdefault(id(MODEL_OUTPUT), MODEL_OUTPUT)
            for node in self._readers.get(id(tensor), ()):
                if through(node.operation):
                    stack.extend(node.output_tensors)
                else:
                    found.setdefault(id(node.operation), node.operation)
        return list(found.values())

    def exclusive_successor(self, layer: Any, through: Predicate) -> Chain | None:
        """Returns the one layer that reads `layer`'s output, if there is one.

        Follows `layer`'s output down across layers for which `through` is
        true to the first layer for which it is false, the successor. The
        result is None unless all of this holds: `layer`, the successor and
        every layer between are each called once by the model; `layer` and
        every layer between produce one tensor; every layer between and the
        successor read that one tensor only; and every tensor on the way
        (`layer`'s output included) is read by exactly one call and is not a
        model output.

        Args:
            layer: A layer of the model.
            through: Which layers to look through.

        Returns:
            The :class:`Chain`, or None.
        """
        if self.call_count(layer) != 1:
            return None
        node, between = self._calls_of(layer)[0], []
        while len(node.output_tensors) == 1:
            tensor = node.output_tensors[0]
            readers = self._readers.get(id(tensor), ())
            if id(tensor) in self._output_ids or len(readers) != 1:
                return None
            node = readers[0]
            operation = node.operation
            if self.call_count(operation) != 1 or len(node.input_tensors) != 1:
                return None
            if not through(operation):
                return Chain(operation, tuple(between))
            between.append(operation)
        return None

    def _calls_of(self, layer: Any) -> list:
        """Returns the nodes of `layer`'s calls; raises if it has none."""
        calls = self._calls.get(id(layer))
        if not calls:
            name = getattr(layer, "name", repr(layer))
            raise ConfigError(
                "Expected layer to be called by the model. Received: "
                f"layer={name!r}, which the model never calls"
            )
        return calls
