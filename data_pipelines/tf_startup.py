"""A quiet TensorFlow start-up, for the commands and for library code that loads
TensorFlow only once its (numpy-only) checks have passed.

Building blocks:
  `import_tensorflow`   import TensorFlow with its known start-up noise filtered out

TensorFlow writes start-up lines from C++ straight to file descriptor 2 before Python can
configure anything: "All log messages before absl::InitializeLog() ...", the oneDNN notice,
"Could not find cuda drivers" (twice), and on a machine with CUDA libraries but no GPU an
error-level "failed call to cuInit ... (303)". `import_tensorflow` sets
``TF_CPP_MIN_LOG_LEVEL=1`` (later C++ info lines, e.g. XLA's, are dropped; warnings and
errors stay; a value set by the user is kept) and captures descriptor 2 while TensorFlow
loads and finds its devices, then writes back every captured line except the ones in
`STARTUP_NOISE`. Set ``NRI_TF_SHOW_TF_STARTUP=1`` to see them all.

It also sets ``TF_CPU_ALLOCATOR_USE_BFC=true`` (a value set by the user is kept): TensorFlow's
default CPU allocator hands every tensor to malloc, which maps each large one afresh and
unmaps it when it is freed, so training on 1000 nodes spent a third of its CPU time in the
kernel zeroing fresh pages; TensorFlow's BFC pool keeps the memory and reuses it
(`benchmarks/large_systems.py --allocators malloc bfc`; README "Benchmarks").
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
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
    if "tensorflow" in sys.modules or os.environ.get(SHOW_STARTUP_ENV):
        import tensorflow as tf   # the one job of this function: import it, when asked

        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf   # with descriptor 2 captured

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
