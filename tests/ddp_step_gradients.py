"""Run by test_train_loop.py: one epoch of ``train()`` in 2 gloo processes (Lightning relaunches this script
for rank 1), comparing each optimizer step's gradient with the one-batch gradient; rank 0 writes the result.

    python tests/ddp_step_gradients.py <result.json> <tiny model dir> <work dir> <override>...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from train_helpers import CompareStepGradients, run_training

if __name__ == "__main__":
    result, model_dir, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    compare = CompareStepGradients()
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_training(work, model_dir, monkeypatch, sys.argv[4:], compare)
    if compare.max_difference:  # rank 0
        fields = ("max_difference", "largest_gradient", "micro_batches")
        result.write_text(json.dumps({name: getattr(compare, name) for name in fields}))
