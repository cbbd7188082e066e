"""Reports on a model and its compilation: the Keras-style summary, `cnnc explain`, the
IR as a Graphviz graph, and training curves."""
