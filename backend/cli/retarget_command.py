"""`irg-motion retarget`: put a motion file on a character and export it, headless, through the bpy module."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from backend.motion.io import load_motion
from retarget.rigmaps import detect_rig_map, load_rig_map, preset_rig_map
from retarget.root_motion import ROOT_MODES
from retarget.transfer import RetargetOptions, retarget

OUTPUT_SUFFIXES = (".fbx", ".glb", ".bvh", ".blend")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "retarget",
        help="retarget a motion (.npz) onto a character and export FBX, GLB, BVH or .blend",
        description="Retarget an SMPL-22 motion onto an armature (a .fbx, .blend or .bvh file, or a preset "
                    "reference rig: smpl, mixamo, rigify, ue5, vroid, cmu) and export the result.",
    )
    p.add_argument("motion", help="motion file (.npz with joints and fps)")
    p.add_argument("--rig", required=True, metavar="TARGET", help="a .fbx/.blend/.bvh file or a preset rig name")
    p.add_argument("--out", required=True, metavar="OUT", help="output file: .fbx, .glb, .bvh or .blend")
    p.add_argument("--map", metavar="JSON", help="rig map JSON (SMPL joint -> bone name); default: auto-detect")
    p.add_argument("--preset", metavar="NAME", help="use this rig map preset instead of auto-detection")
    p.add_argument("--armature", default="", metavar="NAME", help="which armature, when the file holds several")
    p.add_argument("--root-mode", choices=ROOT_MODES, default="travel", help="where root motion goes (default: travel)")
    p.add_argument("--no-foot-lock", action="store_true", help="do not pin planted feet")
    p.add_argument("--no-ground-snap", action="store_true", help="do not move the take so the feet rest on the ground")
    p.add_argument("--frame-start", type=int, default=1, help="first frame of the keys (default: 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out must end in one of {', '.join(OUTPUT_SUFFIXES)}, got {args.out!r}")
    if args.map and args.preset:
        raise ValueError("give either --map or --preset, not both")
    motion = load_motion(args.motion)
    try:
        from retarget import blender_io
    except ImportError:
        raise ValueError("the retarget command needs Blender's Python module: pip install bpy==5.0.1") from None

    obj = blender_io.load_target(args.rig, args.armature)
    rig = blender_io.rig_from_armature(obj)
    if args.map:
        rig_map = load_rig_map(args.map)
    elif args.preset:
        rig_map = preset_rig_map(args.preset, rig.bone_names)
    else:
        rig_map = detect_rig_map(rig.bone_names)
    notes = []
    if rig_map.name == "rigify_fk":  # keys on FK controls only show with the limbs in FK and the head following
        switched = blender_io.switch_rigify_to_fk(obj)
        if switched:
            notes.append(f"switched {', '.join(switched)} to FK")
            rig = blender_io.rig_from_armature(obj)  # constraint influences follow the switches
    options = RetargetOptions(
        root_mode=args.root_mode, foot_lock=not args.no_foot_lock, ground_snap=not args.no_ground_snap
    )
    # fitted SMPL parameters in the file give each bone its true twist (forearm roll, head turn)
    smpl_pose = motion.smpl if {"global_orient", "body_pose"} <= motion.smpl.keys() else None
    anim = retarget(motion.joints, rig, rig_map, options, fps=motion.fps, smpl_pose=smpl_pose)
    blender_io.write_action(obj, anim, Path(args.motion).stem, frame_start=args.frame_start)
    import bpy

    blender_io.set_scene_timing(bpy.context.scene, args.frame_start, anim.frames, motion.fps)
    blender_io.export(obj, args.out)

    unmapped = len(rig.bone_names) - len(rig_map.bones)
    errors = Console(stderr=True)
    for warning in anim.warnings:
        errors.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    for note in notes:
        errors.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    Console().print(
        f"retargeted {anim.frames} frames at {motion.fps:g} fps onto [bold]{obj.name}[/] "
        f"(rig map {rig_map.name}, {len(rig_map.bones)} of 22 joints mapped, {unmapped} bones left at rest, "
        f"root mode {options.root_mode}{', twist from the SMPL pose' if smpl_pose is not None else ''}) -> {args.out}",
        highlight=False,
    )
    return 0
