"""What several keras_rank packages need: the bottom of the import graph.

Errors and their checks, the layer-matrix registry (a layer's weights as one
matrix and back), the rule of which layers can be compressed, the layer
graph, costs, model surgery, unit removal, users' model files, work
directories, and reading, running and timing LiteRT files. Nothing here
imports another keras_rank package.
"""
