"""Entry point only: ``python -m data_pipelines.generate`` runs `nri_tf.cli.generate.main`
(the command line lives in the applications layer; the library is
`data_pipelines.generation`)."""

import sys

from nri_tf.cli.generate import main

if __name__ == "__main__":
    sys.exit(main())
