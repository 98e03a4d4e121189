"""Stage-3 GRPO (reference/irg-motionllm.md section 5) with trl's GRPOTrainer.

    rewards.py   the reward functions (format, text-motion and motion-motion alignment, fidelity) in trl's signature
    data.py      the prompt data set: one row per train caption, the product's exact v3 prompt
    spans.py     the logits processor that keeps motion spans to code tokens during rollouts
    callbacks.py what a run reports: the JSONL log and the progress bar
    train.py     GRPOTrainConfig, train_grpo() and the export to a model folder

docs/grpo.md explains the rewards, the recipes and how to run on GPUs.
"""
