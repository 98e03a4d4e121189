"""Retarget + keyframes of a 200-frame motion onto the 65-bone UE5-style reference rig (targets: the numpy solve and
transfer under 20 ms, everything with keys under 100 ms).

    python benchmarks/retarget_speed.py [--frames 200] [--runs 9]

Prints the median and the spread of several runs per stage. Keys are written through the bpy wheel when it
is installed (the part that runs inside Blender); without it only the numpy stages are timed.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from retarget.joints_to_rotations import joints_to_rotations
from retarget.rig import reference_layout, rig_from_bones
from retarget.rigmaps import detect_rig_map
from retarget.rotations import axis_angle_to_matrix
from retarget.skeleton import NUM_JOINTS, forward_kinematics
from retarget.transfer import RetargetOptions, retarget


def busy_motion(frames: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(frames)[:, None, None] / 20.0
    axis_angle = 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0, (1, NUM_JOINTS, 3)) * t + rng.uniform(0, 6, (1, NUM_JOINTS, 3)))
    trans = np.stack([0.2 * np.sin(t[:, 0, 0]), 0.95 + 0.02 * np.sin(6 * t[:, 0, 0]), 1.2 * t[:, 0, 0]], -1)
    return forward_kinematics(axis_angle_to_matrix(axis_angle), trans)[0].astype(np.float32)


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - start))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    joints = busy_motion(args.frames)
    options = RetargetOptions()  # travel, foot lock and ground snap on: the default path
    rows: list[tuple[str, list[float]]] = []

    try:
        import bpy

        from retarget.blender_io import build_preset_rig, rig_from_armature, write_action
    except ImportError:
        bpy = None
    if bpy is not None:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        obj = build_preset_rig("ue5")
        rig = rig_from_armature(obj)
    else:
        rig = rig_from_bones(*reference_layout("ue5"))
    rig_map = detect_rig_map(rig.bone_names)
    anim = retarget(joints, rig, rig_map, options)

    rows.append(("joints -> rotations (numpy)", timed(lambda: joints_to_rotations(joints), args.runs)))
    rows.append(("retarget, all stages (numpy)", timed(lambda: retarget(joints, rig, rig_map, options), args.runs)))
    if bpy is not None:
        def keys() -> None:
            write_action(obj, anim, "bench")

        def everything() -> None:
            write_action(obj, retarget(joints, rig_from_armature(obj), rig_map, options), "bench")

        rows.append(("write_action keys (bpy)", timed(keys, args.runs)))
        rows.append(("rig read + retarget + keys", timed(everything, args.runs)))

    print(f"{args.frames} frames onto {len(rig.bone_names)} bones ({rig_map.name} map), {args.runs} runs, milliseconds")
    print(f"{'stage':32s} {'median':>8s} {'min':>8s} {'max':>8s}")
    for name, times in rows:
        print(f"{name:32s} {statistics.median(times):8.1f} {min(times):8.1f} {max(times):8.1f}")
    numpy_ms = statistics.median(rows[1][1])
    print(f"target numpy < 20 ms: {'met' if numpy_ms < 20 else 'NOT met'} ({numpy_ms:.1f} ms)")
    if bpy is not None:
        total = statistics.median(rows[-1][1])
        print(f"target all < 100 ms: {'met' if total < 100 else 'NOT met'} ({total:.1f} ms)")


if __name__ == "__main__":
    main()
