"""One task per entry point: each composes the stages for one job (train.py, infer.py, evaluate.py, ...)."""
