"""Neural Relational Inference (Kipf et al., ICML 2018) in TensorFlow/Keras."""

__version__ = "0.1.0"
