"""The paper's baselines (appendix D.1.1), for edge recovery (Table 1) and prediction (Table 2).

  correlation   Corr. (path) / Corr. (LSTM): thresholded correlations between node features
  lstm          LSTM (single) / LSTM (joint) trajectory predictors (and Corr. (LSTM)'s features)
  predictors    `TrajectoryPredictor`: trains a decoder on a fixed graph (NRI (full graph),
                NRI (true graph)) or a graph-free predictor (the LSTMs); Static
  supervised    the encoder alone, trained with cross-entropy on the true edges

NRI (sim.), the encoder trained through the ground-truth simulator, is an `NRI` model with
``decoder="sim"`` (`nri_tf.physics`). `python -m nri_tf.experiments` runs them all.
"""
