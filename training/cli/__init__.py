"""`irg-motion` commands that live in training/ (registered through the irg_motion.commands entry points)."""
