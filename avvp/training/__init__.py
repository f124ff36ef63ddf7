"""Training: the loop (train), MA's refinement (refine), the losses, the CUDA-graphed step (graphs), GPU slots."""
