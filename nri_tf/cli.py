"""What the command-line entry points share: a quiet TensorFlow start-up, progress output
that suits the terminal or a log file, and the one-line messages for known user errors.

Building blocks:
  `import_tensorflow`   import TensorFlow with its known start-up noise filtered out
  `keras_verbose`       the Keras ``verbose`` for "auto": a progress bar on a terminal,
                        one line per epoch otherwise
  `log_to_stderr`       progress messages of a command

TensorFlow writes start-up lines from C++ straight to file descriptor 2 before Python can
configure anything: "All log messages before absl::InitializeLog() ...", the oneDNN notice,
"Could not find cuda drivers" (twice), and on a machine with CUDA libraries but no GPU an
error-level "failed call to cuInit ... (303)". `import_tensorflow` sets
``TF_CPP_MIN_LOG_LEVEL=1`` (later C++ info lines, e.g. XLA's, are dropped; warnings and
errors stay; a value set by the user is kept) and captures descriptor 2 while TensorFlow
loads and finds its devices, then writes back every captured line except the ones in
`STARTUP_NOISE`. Set ``NRI_TF_SHOW_TF_STARTUP=1`` to see them all.
"""

from __future__ import annotations

import os
import sys
import tempfile

STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "Unable to register cu",      # cuDNN / cuFFT / cuBLAS factory already registered
    "TF-TRT Warning",
)
SHOW_STARTUP_ENV = "NRI_TF_SHOW_TF_STARTUP"


def is_noise(line: str) -> bool:
    """Whether a captured start-up line is one of the known harmless `STARTUP_NOISE` lines."""
    return any(pattern in line for pattern in STARTUP_NOISE)


def import_tensorflow():
    """Imports TensorFlow (and lets it find its devices) without its start-up noise.

    Returns:
      the ``tensorflow`` module. Devices are listed, not initialised, so a strategy can
      still split the CPU into logical devices afterwards.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" in sys.modules or os.environ.get(SHOW_STARTUP_ENV):
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_noise(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
    return tf


def keras_verbose(verbose: int | str) -> int:
    """Keras' ``verbose`` for a command's ``--verbose``: "auto" is 1 (a progress bar
    redrawn in place) when stdout is a terminal and 2 (one line per epoch) when it is a
    file or a pipe, where the bar's carriage returns would fill the log."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
