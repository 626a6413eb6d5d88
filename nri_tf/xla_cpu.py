"""XLA on the CPU: let oneDNN run the matrix products of XLA-compiled steps.

TensorFlow's own (non-XLA) CPU kernels call oneDNN for matmuls; XLA's CPU backend emits
its own dot loops unless ``--xla_cpu_use_onednn=true`` is in ``XLA_FLAGS``, and those are
slower for NRI's shapes. Measured with benchmarks/train_step.py (MLP encoder + MLP decoder,
paper sizes, 2-core AMD EPYC): 100 samples/s with XLA's dots, 118 with oneDNN's, 109
without XLA.

XLA reads ``XLA_FLAGS`` once, when it compiles its first function in the process, so the
flag must be set before then: `prefer_onednn` is called when an NRI model is compiled
with XLA. A user's own ``--xla_cpu_use_onednn`` setting is left as it is.
"""

from __future__ import annotations

import os

FLAG = "--xla_cpu_use_onednn"


def prefer_onednn() -> None:
    """Adds ``--xla_cpu_use_onednn=true`` to ``XLA_FLAGS`` unless the flag is already set."""
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FLAG}=true".strip()
