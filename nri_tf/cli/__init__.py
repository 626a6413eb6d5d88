"""The applications: the command-line entry points, the top layer of the code base.

  `train`        `python -m nri_tf.train`: train (and test) an NRI model
  `evaluate`     `python -m nri_tf.evaluate`: re-evaluate a run on any compatible dataset
  `export`       `python -m nri_tf.export`: a run as a TF Serving SavedModel
  `experiments`  `python -m nri_tf.experiments`: the paper's Tables 1 and 2, with
                 `budgets`, `paper_results` (the paper's numbers as data),
                 `experiment_models` (the ten model runners) and `tables` (caching,
                 statistics, Markdown)
  `generate`     `python -m data_pipelines.generate`: simulate or import a dataset
  `common`       what they share: progress output and the one-line user-error policy

Only this package imports from every layer below it (`data_pipelines`, the `nri_tf` model
library, `trainers`), and only here do known user errors (`data_pipelines.errors.UserError`)
become one-line messages; the ``python -m`` modules named above are thin shims onto these.
"""
