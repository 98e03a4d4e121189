"""SMPL-22 skeleton and retargeting math. numpy only: this package is vendored into Blender."""
