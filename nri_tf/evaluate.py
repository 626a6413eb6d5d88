"""Entry point only: ``python -m nri_tf.evaluate`` runs `nri_tf.cli.evaluate.main` (the command
line lives in the applications layer, `nri_tf.cli`)."""

import sys

from nri_tf.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
