"""Training of the motion VQ-VAE tokenizer."""
