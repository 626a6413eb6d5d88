"""The paper's baselines (appendix D.1.1), for edge recovery (Table 1) and prediction (Table 2).

  correlation   Corr. (path) / Corr. (LSTM): thresholded correlations between node features
  lstm          LSTM (single) / LSTM (joint) trajectory predictors (and Corr. (LSTM)'s features)
  predictors    Static (x_{t+1} = x_t)
  supervised    the encoder alone, trained with cross-entropy on the true edges

NRI (sim.), the encoder trained through the ground-truth simulator, is an `NRI` model with
``decoder="sim"`` (`nri_tf.physics`); NRI (full graph), NRI (true graph) and the LSTMs are
`NRI` models with a fixed ``graph_source`` ("full", "true", "none"), trained by the same
train and test steps. `python -m nri_tf.experiments` runs them all.
"""
