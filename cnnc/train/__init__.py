"""Training: configuration, losses, optimizers, autodiff and the training loop."""
