"""Where the redundancy of a trained model is (Heitmann, section 3).

Pure functions on a layer's unit matrix (rows are units, see `units`) plus
their plots and the Keras wiring: pruning criteria and physical pruning,
weight spectra against the Marchenko-Pastur law, cosine graphs of units over
training, and one report for any saved model (`trainers.analyze`).
"""
