"""Simulated and real interacting-systems datasets and their tf.data input pipelines."""
