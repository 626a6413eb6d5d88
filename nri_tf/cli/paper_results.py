"""The paper's numbers (Kipf et al. 2018) and the rows of its Tables 1 and 2, as data.

  `TABLE_ROWS`     table -> its models, in the paper's order, and after NRI (learned) (Table
                   2) its test as the reference code runs it where the graph is dynamic
                   (re-inferred from the recorded frames), then what
                   goes beyond the paper: its graphs refined against its decoder
                   (`nri_tf.refinement`), its run refit on the refined training graphs
                   (`trainers.refit`) as it is, and (Table 2) with refined graphs; Table
                   1 ends with the accuracy of the graphs that NRI (true graph)'s decoder
                   finds likeliest, what the likelihood itself can tell
  `PAPER_ROWS`     table -> the rows the paper itself has (the others go beyond it)
  `ROW_NAMES`      model key -> the name the paper prints
  `TABLE2_STEPS`   the predicted steps Table 2 reports
  `PAPER_TABLE1`   simulation -> model -> edge accuracy in % for (5 nodes, 10 nodes)
  `PAPER_TABLE2`   simulation -> model -> MSE after (1, 10, 20) predicted steps, 5 nodes
  `NRI_MPM_TABLE1` NRI-MPM's published edge accuracy (Chen et al., AAAI 2021)
  `PAPER_PLOTS`    source -> what the paper says of a Table 2 it shows only as a plot
"""

TABLE_ROWS = {
    "table1": ("corr_path", "corr_lstm", "nri_sim", "nri_learned", "nri_refined", "nri_refit_plain",
               "supervised", "nri_true_graph_likeliest"),
    "table2": ("static", "lstm_single", "lstm_joint", "nri_full_graph", "nri_learned",
               "nri_recorded_window", "nri_refined", "nri_refit_plain", "nri_refit", "nri_true_graph"),
}

PAPER_ROWS = {
    "table1": ("corr_path", "corr_lstm", "nri_sim", "nri_learned", "supervised"),
    "table2": ("static", "lstm_single", "lstm_joint", "nri_full_graph", "nri_learned", "nri_true_graph"),
}

ROW_NAMES = {
    "corr_path": "Corr. (path)", "corr_lstm": "Corr. (LSTM)", "nri_sim": "NRI (sim.)",
    "nri_learned": "NRI (learned)", "nri_refined": "NRI (learned), refined (beyond the paper)",
    "nri_recorded_window": "NRI (learned), dynamic graph from the recorded frames (the reference's test)",
    "nri_refit_plain": "NRI (learned), refit (beyond the paper)",
    "nri_refit": "NRI (learned), refit, refined (beyond the paper)",
    "supervised": "Supervised", "static": "Static",
    "lstm_single": "LSTM (single)", "lstm_joint": "LSTM (joint)",
    "nri_full_graph": "NRI (full graph)", "nri_true_graph": "NRI (true graph)",
    "nri_true_graph_likeliest": "Likeliest graph under NRI (true graph)'s decoder (beyond the paper)",
}

TABLE2_STEPS = (1, 10, 20)

# Paper, Table 1: edge accuracy in %, (5 nodes, 10 nodes).
PAPER_TABLE1 = {
    "springs": {"corr_path": (52.4, 50.4), "corr_lstm": (52.7, 54.9), "nri_sim": (99.8, 98.2),
                "nri_learned": (99.9, 98.4), "supervised": (99.9, 98.8)},
    "charged": {"corr_path": (55.8, 51.4), "corr_lstm": (54.2, 52.7), "nri_sim": (59.6, 53.7),
                "nri_learned": (82.1, 70.8), "supervised": (95.0, 94.6)},
    "kuramoto": {"corr_path": (62.8, 59.3), "corr_lstm": (54.4, 56.2),
                 "nri_learned": (96.0, 75.7), "supervised": (99.7, 97.1)},
}

# Paper, Table 2: MSE after 1 / 10 / 20 predicted steps, 5 nodes.
PAPER_TABLE2 = {
    "springs": {"static": (7.93e-5, 7.59e-3, 2.82e-2), "lstm_single": (2.27e-6, 4.69e-4, 4.90e-3),
                "lstm_joint": (4.13e-8, 2.19e-5, 7.02e-4), "nri_full_graph": (1.66e-5, 1.64e-3, 6.31e-3),
                "nri_learned": (3.12e-8, 3.29e-6, 2.13e-5), "nri_true_graph": (1.69e-11, 1.32e-9, 7.06e-6)},
    "charged": {"static": (5.09e-3, 2.26e-2, 5.42e-2), "lstm_single": (2.71e-3, 7.05e-3, 1.65e-2),
                "lstm_joint": (1.68e-3, 6.45e-3, 1.49e-2), "nri_full_graph": (1.09e-3, 3.78e-3, 9.24e-3),
                "nri_learned": (1.05e-3, 3.21e-3, 7.06e-3), "nri_true_graph": (1.04e-3, 3.03e-3, 5.71e-3)},
    "kuramoto": {"static": (5.75e-2, 3.79e-1, 3.39e-1), "lstm_single": (7.81e-4, 3.80e-2, 8.08e-2),
                 "lstm_joint": (3.44e-4, 1.29e-2, 4.74e-2), "nri_full_graph": (2.15e-2, 5.19e-2, 8.96e-2),
                 "nri_learned": (1.40e-2, 2.01e-2, 3.26e-2), "nri_true_graph": (1.35e-2, 1.54e-2, 2.19e-2)},
}

# NRI-MPM (Chen et al., AAAI 2021), Table 1 edge accuracy in % (5 nodes, 10 nodes), as quoted
# in issue 14 (springs not quoted there).
NRI_MPM_TABLE1 = {"charged": (93.3, 81.6), "kuramoto": (97.3, 80.3)}

# Paper, section 5.2: motion capture's Table 2 is a plot (Figure 6), so there are no numbers
# to print beside ours; this is what the text says of it.
PAPER_PLOTS = {
    "cmu": "The paper shows motion capture's MSE only as a plot (Figure 6, subject 35 walking, "
           "its 11 / 4 / 7 trial split): NRI (learned) beats NRI (full graph) in long-term "
           "predictions, both beat the LSTM baselines, and re-inferring the graph at every "
           "step (dynamic graph) improves NRI (learned) significantly. The reference code "
           "re-infers that graph from the recorded test frames, so from the third predicted "
           "frame on it reads the targets of earlier predictions (the row 'from the recorded "
           "frames'); NRI "
           "(learned) here re-infers it from its own predictions, what a deployed model has.",
}
