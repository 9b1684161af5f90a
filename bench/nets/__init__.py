"""Layer 2: networks, differentiable Siamese augmentation and the matching distances."""
