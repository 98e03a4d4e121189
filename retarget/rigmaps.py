"""Which target bone plays which SMPL-22 joint: presets for common rig families, auto-detection from bone
names, and a small JSON format for user maps.

A preset lists, per SMPL joint, the bone names that rig family uses (first the exact spellings, matched
before anything else, then the same names after normalisation: case, separators, namespaces such as
`mixamorig:` and Rigify's `DEF-` prefix are ignored). `{side}`, `{Side}`, `{S}` and `{s}` in a name stand
for left/Left/L/l and right/Right/R/r.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from retarget.skeleton import JOINT_NAMES, joint_index

# Without these a motion cannot be read on a body; the spine segments, neck, collars and toes are optional
# (an unmapped joint's rotation is carried by its nearest mapped ancestor).
REQUIRED_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "head",
)

# Words animators use for the SMPL joints, for error messages.
JOINT_LABELS = {
    "pelvis": "hips", "spine1": "lower spine", "spine2": "middle spine", "spine3": "chest", "neck": "neck",
    "head": "head", "collar": "clavicle", "shoulder": "upper arm", "elbow": "forearm", "wrist": "hand",
    "hip": "thigh", "knee": "shin", "ankle": "foot", "foot": "toes",
}

_SIDES = {
    "left": {"side": "left", "Side": "Left", "S": "L", "s": "l"},
    "right": {"side": "right", "Side": "Right", "S": "R", "s": "r"},
}


@dataclass
class RigMap:
    name: str
    bones: dict[str, str]                              # SMPL-22 joint name -> target bone name
    missing: list[str] = field(default_factory=list)   # required SMPL joints with no bone
    root: str = ""                                     # bone that takes root motion in "root_bone" mode ("" = none)
    # extra bone -> SMPL joint whose rotation it takes as well (Rigify's hips FK hangs below the spine FK control)
    followers: dict[str, str] = field(default_factory=dict)
    # SMPL joint -> bone whose rest pose stands for that body part when the mapped bone's does not (Rigify's FK
    # controls pivot at the far end of the segment they turn: its DEF bone shows the segment)
    rest_bones: dict[str, str] = field(default_factory=dict)

    def describe_missing(self) -> str:
        return ", ".join(f"{j} ({joint_label(j)})" for j in self.missing)


@dataclass(frozen=True)
class _Preset:
    name: str
    central: dict[str, tuple[str, ...]]   # joint -> candidate bone names
    sided: dict[str, tuple[str, ...]]     # joint without side ("hip") -> templates with {side} placeholders
    signature: tuple[str, ...] = ()       # bones that tell this family from look-alikes (UE5 vs UE4, CMU vs Mixamo)
    root: tuple[str, ...] = ()            # root-motion bone candidates
    excludes: tuple[str, ...] = ()        # bones this family never has (UE5's spine_05 rules out UE4)
    followers: tuple[tuple[str, str], ...] = ()  # (bone, joint): bones that also take a joint's rotation
    rest_from: str = ""                   # preset whose bones give the rest pose of each body part (rest_bones)

    def candidates(self) -> dict[str, tuple[str, ...]]:
        result = dict(self.central)
        for joint, templates in self.sided.items():
            for side, tokens in _SIDES.items():
                result[f"{side}_{joint}"] = tuple(t.format(**tokens) for t in templates)
        return {j: result[j] for j in JOINT_NAMES if j in result}


_MIXAMO_LIMBS = {
    "collar": ("{Side}Shoulder",), "shoulder": ("{Side}Arm",), "elbow": ("{Side}ForeArm",),
    "wrist": ("{Side}Hand",), "hip": ("{Side}UpLeg",), "knee": ("{Side}Leg",), "ankle": ("{Side}Foot",),
    "foot": ("{Side}ToeBase",),
}
_UE_LIMBS = {
    "collar": ("clavicle_{s}",), "shoulder": ("upperarm_{s}",), "elbow": ("lowerarm_{s}",), "wrist": ("hand_{s}",),
    "hip": ("thigh_{s}",), "knee": ("calf_{s}",), "ankle": ("foot_{s}",), "foot": ("ball_{s}",),
}

_PRESET_LIST = (
    _Preset(
        "smpl",  # SMPL / SMPL-X / SMPL-H, as the Meshcapade and MPI add-ons name them
        central={
            "pelvis": ("pelvis", "Pelvis"), "spine1": ("spine1", "Spine1"), "spine2": ("spine2", "Spine2"),
            "spine3": ("spine3", "Spine3"), "neck": ("neck", "Neck"), "head": ("head", "Head"),
        },
        sided={
            "collar": ("{side}_collar", "{S}_Collar"), "shoulder": ("{side}_shoulder", "{S}_Shoulder"),
            "elbow": ("{side}_elbow", "{S}_Elbow"), "wrist": ("{side}_wrist", "{S}_Wrist"),
            "hip": ("{side}_hip", "{S}_Hip"), "knee": ("{side}_knee", "{S}_Knee"),
            "ankle": ("{side}_ankle", "{S}_Ankle"), "foot": ("{side}_foot", "{S}_Foot"),
        },
        signature=("spine3", "left_collar", "L_Collar"),
        root=("root",),
    ),
    _Preset(
        "mixamo",
        central={
            "pelvis": ("Hips",), "spine1": ("Spine",), "spine2": ("Spine1",), "spine3": ("Spine2",),
            "neck": ("Neck",), "head": ("Head",),
        },
        sided=_MIXAMO_LIMBS,
        signature=("Spine2", "HeadTop_End"),
        excludes=("LHipJoint", "LowerBack"),
    ),
    _Preset(
        "rigify",  # deform bones of a generated rig, and the metarig itself
        central={
            "pelvis": ("DEF-spine", "spine"), "spine1": ("DEF-spine.001", "spine.001"),
            "spine2": ("DEF-spine.002", "spine.002"), "spine3": ("DEF-spine.003", "spine.003"),
            "neck": ("DEF-spine.004", "spine.004"), "head": ("DEF-spine.006", "spine.006"),
        },
        sided={
            "collar": ("DEF-shoulder.{S}", "shoulder.{S}"), "shoulder": ("DEF-upper_arm.{S}", "upper_arm.{S}"),
            "elbow": ("DEF-forearm.{S}", "forearm.{S}"), "wrist": ("DEF-hand.{S}", "hand.{S}"),
            "hip": ("DEF-thigh.{S}", "thigh.{S}"), "knee": ("DEF-shin.{S}", "shin.{S}"),
            "ankle": ("DEF-foot.{S}", "foot.{S}"), "foot": ("DEF-toe.{S}", "toe.{S}"),
        },
        signature=("spine.006", "spine.005"),
        excludes=("upper_arm_fk.L", "thigh_fk.L"),  # a generated rig: its DEF bones follow constraints, key the controls
    ),
    _Preset(
        "rigify_fk",  # the FK controls of a generated Rigify rig (limbs must be switched to FK)
        central={
            "pelvis": ("torso",), "spine1": ("spine_fk.001",), "spine2": ("spine_fk.002",),
            "spine3": ("spine_fk.003",), "neck": ("neck",), "head": ("head",),
        },
        sided={
            "collar": ("shoulder.{S}",), "shoulder": ("upper_arm_fk.{S}",), "elbow": ("forearm_fk.{S}",),
            "wrist": ("hand_fk.{S}",), "hip": ("thigh_fk.{S}",), "knee": ("shin_fk.{S}",),
            "ankle": ("foot_fk.{S}",), "foot": ("toe_fk.{S}", "toe.{S}"),
        },
        signature=("upper_arm_fk.L", "thigh_fk.L", "torso"),
        root=("root",),
        followers=(("spine_fk", "pelvis"),),  # the hips' FK bone is a child of spine_fk.001: give it the hips' turn
        rest_from="rigify",
    ),
    _Preset(
        "ue4",  # UE4 mannequin: three spine bones
        central={
            "pelvis": ("pelvis",), "spine1": ("spine_01",), "spine2": ("spine_02",), "spine3": ("spine_03",),
            "neck": ("neck_01",), "head": ("head",),
        },
        sided=_UE_LIMBS,
        root=("root",),
        excludes=("spine_05",),
    ),
    _Preset(
        "ue5",  # UE5 Manny/Quinn: five spine bones; spine_01 and spine_03 ride along with their parents
        central={
            "pelvis": ("pelvis",), "spine1": ("spine_02",), "spine2": ("spine_04",), "spine3": ("spine_05",),
            "neck": ("neck_01",), "head": ("head",),
        },
        sided=_UE_LIMBS,
        signature=("spine_05", "neck_02"),
        root=("root",),
    ),
    _Preset(
        "vroid",  # VRoid Studio exports and VRM humanoid bone names
        central={
            "pelvis": ("J_Bip_C_Hips", "hips"), "spine1": ("J_Bip_C_Spine", "spine"),
            "spine2": ("J_Bip_C_Chest", "chest"), "spine3": ("J_Bip_C_UpperChest", "upperChest"),
            "neck": ("J_Bip_C_Neck", "neck"), "head": ("J_Bip_C_Head", "head"),
        },
        sided={
            "collar": ("J_Bip_{S}_Shoulder", "{side}Shoulder"), "shoulder": ("J_Bip_{S}_UpperArm", "{side}UpperArm"),
            "elbow": ("J_Bip_{S}_LowerArm", "{side}LowerArm"), "wrist": ("J_Bip_{S}_Hand", "{side}Hand"),
            "hip": ("J_Bip_{S}_UpperLeg", "{side}UpperLeg"), "knee": ("J_Bip_{S}_LowerLeg", "{side}LowerLeg"),
            "ankle": ("J_Bip_{S}_Foot", "{side}Foot"), "foot": ("J_Bip_{S}_ToeBase", "{side}Toes"),
        },
        signature=("J_Bip_C_UpperChest", "upperChest"),
        root=("Root", "root"),
    ),
    _Preset(
        "cmu",  # CMU mocap BVH (the ASF-derived hierarchy with LHipJoint / LowerBack)
        central={
            "pelvis": ("Hips",), "spine1": ("LowerBack",), "spine2": ("Spine",), "spine3": ("Spine1",),
            "neck": ("Neck",), "head": ("Head",),
        },
        sided=_MIXAMO_LIMBS,
        signature=("LHipJoint", "LowerBack"),
    ),
)
PRESET_DEFINITIONS: dict[str, _Preset] = {p.name: p for p in _PRESET_LIST}


def joint_label(joint: str) -> str:
    key = joint.split("_", 1)[1] if joint.startswith(("left_", "right_")) else joint
    side = joint.split("_", 1)[0] + " " if joint.startswith(("left_", "right_")) else ""
    return side + JOINT_LABELS.get(key, key)


def normalize_bone_name(name: str) -> str:
    """'mixamorig:LeftArm', 'DEF-upper_arm.L' and 'Left Arm' become 'leftarm', 'upperarml', 'leftarm'."""
    key = name.strip().rsplit(":", 1)[-1].lower()   # FBX namespaces (mixamorig:, mixamorig1:, Character1:)
    key = re.sub(r"^(mixamorig\d*_|def[-_]|[mfn]_avg_)", "", key)
    return re.sub(r"[\s_.\-]", "", key)


def _resolve(candidates: dict[str, tuple[str, ...]], bone_names: list[str]) -> dict[str, str]:
    """Pick, per joint, the first candidate spelled exactly as in the rig, else the first normalised match."""
    exact = set(bone_names)
    by_key: dict[str, list[str]] = {}
    for bone in bone_names:
        by_key.setdefault(normalize_bone_name(bone), []).append(bone)
    used: set[str] = set()
    result: dict[str, str] = {}
    for joint, names in candidates.items():
        found = next((n for n in names if n in exact and n not in used), None)
        if found is None:
            for n in names:
                found = next((b for b in by_key.get(normalize_bone_name(n), []) if b not in used), None)
                if found:
                    break
        if found:
            result[joint] = found
            used.add(found)
    return result


def _missing(bones: dict[str, str]) -> list[str]:
    return [j for j in REQUIRED_JOINTS if j not in bones]


def _preset_map(preset: _Preset, bone_names: list[str] | None) -> RigMap:
    candidates = preset.candidates()
    if bone_names is None:
        bones = {j: names[0] for j, names in candidates.items()}
        root = preset.root[0] if preset.root else ""
    else:
        bones = _resolve(candidates, bone_names)
        root = next(iter(_resolve({"root": preset.root}, bone_names).values()), "") if preset.root else ""
    if bone_names is None:
        followers = {bone: joint for bone, joint in preset.followers}
    else:
        found = _resolve({bone: (bone,) for bone, _ in preset.followers}, bone_names)
        followers = {found[bone]: joint for bone, joint in preset.followers if bone in found}
    rest_bones = {}
    if preset.rest_from and bone_names is not None:
        rest_bones = _resolve(PRESET_DEFINITIONS[preset.rest_from].candidates(), bone_names)
    return RigMap(name=preset.name, bones=bones, missing=_missing(bones), root=root, followers=followers,
                  rest_bones=rest_bones)


# Each preset with its canonical bone names (what build_preset_rig creates).
PRESETS: dict[str, RigMap] = {name: _preset_map(p, None) for name, p in PRESET_DEFINITIONS.items()}


def preset_rig_map(name: str, bone_names: list[str]) -> RigMap:
    """A preset resolved against a rig's actual bone names (prefixes, separators and case as the rig has them)."""
    if name not in PRESET_DEFINITIONS:
        raise ValueError(f"unknown rig preset {name!r}; choose one of {', '.join(PRESET_DEFINITIONS)}")
    return _preset_map(PRESET_DEFINITIONS[name], list(bone_names))


def detect_rig_map(bone_names) -> RigMap:
    """The preset that explains most of the rig's bone names, resolved against them."""
    bone_names = list(bone_names)
    keys = {normalize_bone_name(b) for b in bone_names}
    best, best_score = None, -1.0
    for preset in PRESET_DEFINITIONS.values():
        rig_map = _preset_map(preset, bone_names)
        signature = any(normalize_bone_name(s) in keys for s in preset.signature)
        excluded = any(normalize_bone_name(s) in keys for s in preset.excludes)
        score = len(rig_map.bones) + 0.5 * signature - 2.0 * excluded
        if score > best_score:
            best, best_score = rig_map, score
    if best is None or len(best.bones) < 4:
        raise ValueError(
            "could not recognise the rig from its bone names (no preset among "
            f"{', '.join(PRESET_DEFINITIONS)} matches); write a rig map JSON (docs/retargeting.md)"
        )
    return best


def rig_map_from_dict(data: dict, source: str = "rig map") -> RigMap:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object with 'bones', got {type(data).__name__}")
    bones_in = data.get("bones")
    if not isinstance(bones_in, dict) or not bones_in:
        raise ValueError(f"{source}: needs a 'bones' object mapping SMPL joint names to bone names")
    bones: dict[str, str] = {}
    for joint, bone in bones_in.items():
        try:
            name = JOINT_NAMES[joint_index(joint)]
        except KeyError as exc:
            raise ValueError(f"{source}: {exc.args[0]}") from None
        if not isinstance(bone, str) or not bone:
            raise ValueError(f"{source}: the bone for {joint!r} must be a non-empty string, got {bone!r}")
        bones[name] = bone
    root = data.get("root", "")
    if not isinstance(root, str):
        raise ValueError(f"{source}: 'root' must be a bone name")
    followers_in = data.get("followers", {})
    if not isinstance(followers_in, dict):
        raise ValueError(f"{source}: 'followers' must map bone names to SMPL joint names")
    followers = {}
    for bone, joint in followers_in.items():
        try:
            followers[bone] = JOINT_NAMES[joint_index(str(joint))]
        except KeyError as exc:
            raise ValueError(f"{source}: follower {bone!r}: {exc.args[0]}") from None
    return RigMap(name=str(data.get("name", "custom")), bones=bones, missing=_missing(bones), root=root,
                  followers=followers)


def load_rig_map(path) -> RigMap:
    """Read a user rig map: {"name": ..., "bones": {"pelvis": "Hips", ...}, "root": "Root" (optional)}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such rig map file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return rig_map_from_dict(data, str(path))


def save_rig_map(rig_map: RigMap, path) -> Path:
    path = Path(path)
    data = {"name": rig_map.name, "bones": rig_map.bones}
    if rig_map.root:
        data["root"] = rig_map.root
    if rig_map.followers:
        data["followers"] = rig_map.followers
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def check_rig_map(rig_map: RigMap, bone_names) -> None:
    """Raise ValueError naming required joints without a bone and mapped bones the rig does not have."""
    names = set(bone_names)
    absent = {j: b for j, b in rig_map.bones.items() if b not in names}
    absent.update({f"follower of {j}": b for b, j in rig_map.followers.items() if b not in names})
    missing = [j for j in REQUIRED_JOINTS if j not in rig_map.bones or j in absent]
    problems = []
    if missing:
        expected = PRESETS.get(rig_map.name)
        hints = [
            f"{j} ({joint_label(j)}" + (f", e.g. {expected.bones[j]!r}" if expected and j in expected.bones else "") + ")"
            for j in missing
        ]
        problems.append(f"no bone for the required joint(s) {', '.join(hints)}")
    if absent:
        problems.append("mapped bone(s) not in the rig: " + ", ".join(f"{j} -> {b!r}" for j, b in absent.items()))
    shared: dict[str, list[str]] = {}
    for j, b in [*rig_map.bones.items(), *((j, b) for b, j in rig_map.followers.items())]:
        shared.setdefault(b, []).append(j)
    for b, joints in shared.items():
        if len(joints) > 1:  # one bone cannot take two rotations
            problems.append(f"bone {b!r} is mapped to several joints ({', '.join(joints)})")
    if problems:
        raise ValueError(f"rig map {rig_map.name!r}: " + "; ".join(problems))
