"""Neural models of the backend: the motion VQ-VAE tokenizer and the motion LLM."""
