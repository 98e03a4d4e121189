"""Training: procedural corpus, data engine, VQ-VAE and motion-LLM trainers, evaluator and metrics."""
