"""Motion data: the motion file format, HumanML3D features and their normalisation."""
