"""How long the add-on takes to put one round on an armature: retarget (numpy) + keys (Blender).

    python benchmarks/addon_apply_speed.py [--frames 200] [--runs 9]

Runs the add-on exactly as built (build_addon.stage) in the bpy wheel, on the preset rigs; the target
is under 100 ms for 200 frames onto the 65-bone UE5 rig. Prints medians over --runs.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import bpy  # noqa: E402

import build_addon  # noqa: E402
from test_addon_support import walk_joints  # noqa: E402


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        build_addon.stage(Path(tmp))
        sys.path.insert(0, tmp)
        addon = importlib.import_module(build_addon.manifest()["id"])
        from irg_motion.retarget.blender_io import build_preset_rig, rig_from_armature, write_action
        from irg_motion.retarget.transfer import RetargetOptions, retarget

        joints = walk_joints(args.frames)
        rows = []
        for preset in ("smpl", "mixamo", "ue5"):
            bpy.ops.wm.read_factory_settings(use_empty=True)
            addon.register()
            try:
                rig = build_preset_rig(preset).name
                settings = bpy.context.scene.irg_motion
                addon.rounds.add_round(settings, job="bench", index=0, armature=rig, prompt="walk", joints=joints, fps=20.0)
                entry = settings.rounds[0]
                assert not entry.error, entry.error
                obj = bpy.data.objects[rig]
                rig_map = addon.rounds.rig_map_for([b.name for b in obj.data.bones], "AUTO")

                def retarget_only():
                    retarget(joints, rig_from_armature(obj), rig_map, RetargetOptions(), fps=20.0)

                anim = retarget(joints, rig_from_armature(obj), rig_map, RetargetOptions(), fps=20.0)

                def keys_only():
                    bpy.data.actions.remove(bpy.data.actions[entry.action])
                    write_action(obj, anim, entry.action)

                retarget_ms = median_ms(retarget_only, args.runs)
                keys_ms = median_ms(keys_only, args.runs)
                apply_ms = median_ms(lambda: addon.rounds.apply_entry(settings, entry), args.runs)
                rows.append((preset, len(obj.data.bones), retarget_ms, keys_ms, apply_ms))
            finally:
                addon.unregister()

    print(f"bpy {bpy.app.version_string}, {args.frames} frames, median of {args.runs} runs")
    print(f"{'rig':<8} {'bones':>5} {'retarget ms':>12} {'keys ms':>9} {'apply ms':>9}  (apply = the add-on's whole path; target < 100 ms)")
    for preset, bones, r, k, total in rows:
        print(f"{preset:<8} {bones:>5} {r:>12.1f} {k:>9.1f} {total:>9.1f}  {'ok' if total < 100 else 'SLOW'}")


if __name__ == "__main__":
    main()
