"""The run lifecycle on the host: the loop over compiled chunks, the run directory, checkpoints,
metrics files and their sinks (TensorBoard, W&B), and evaluation of a finished run."""
