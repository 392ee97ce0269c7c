"""Training: the step loop and its hooks, losses, optimizer and LR schedule, checkpoints, data-parallel set-up."""
