"""Entry point only: ``python -m nri_tf.experiments`` runs `nri_tf.cli.experiments.main` (the command
line lives in the applications layer, `nri_tf.cli`)."""

import sys

from nri_tf.cli.experiments import main

if __name__ == "__main__":
    sys.exit(main())
