"""Entry point only: ``python -m nri_tf.refit`` runs `nri_tf.cli.refit.main` (the command
line lives in the applications layer, `nri_tf.cli`)."""

import sys

from nri_tf.cli.refit import main

if __name__ == "__main__":
    sys.exit(main())
