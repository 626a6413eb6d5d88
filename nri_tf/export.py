"""Entry point only: ``python -m nri_tf.export`` runs `nri_tf.cli.export.main` (the command
line lives in the applications layer, `nri_tf.cli`)."""

import sys

from nri_tf.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
