"""Rig maps: presets, auto-detection from real-world name variants, the JSON format and its errors."""
from __future__ import annotations

import json

import pytest

from retarget.rigmaps import PRESETS, check_rig_map, detect_rig_map, load_rig_map, normalize_bone_name, save_rig_map

# Bone lists as the tools export them (abridged to body bones plus a few extras each family has).
MIXAMO = ["Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "HeadTop_End"] + [
    f"{s}{b}" for s in ("Left", "Right")
    for b in ("Shoulder", "Arm", "ForeArm", "Hand", "HandIndex1", "UpLeg", "Leg", "Foot", "ToeBase", "Toe_End")
]
CMU = ["Hips", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head"] + [
    f"{s}{b}" for s in ("Left", "Right") for b in ("Shoulder", "Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot", "ToeBase")
] + ["LHipJoint", "RHipJoint", "LThumb", "RThumb"]
UE4 = ["root", "pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head", "ik_foot_root"] + [
    f"{b}_{s}" for s in "lr" for b in ("clavicle", "upperarm", "lowerarm", "hand", "thigh", "calf", "foot", "ball", "upperarm_twist_01")
]
UE5 = UE4 + ["spine_04", "spine_05", "neck_02"]
RIGIFY_METARIG = [f"spine.{i:03d}" if i else "spine" for i in range(7)] + [
    f"{b}.{s}" for s in "LR" for b in ("shoulder", "upper_arm", "forearm", "hand", "thigh", "shin", "foot", "toe", "heel.02", "breast", "pelvis")
]
RIGIFY_GENERATED = (
    ["root", "torso", "hips", "chest", "neck", "head", "spine_fk", "spine_fk.001", "spine_fk.002", "spine_fk.003"]
    + [f"DEF-{b}" for b in RIGIFY_METARIG] + [f"ORG-{b}" for b in RIGIFY_METARIG]
    + [f"{b}.{s}" for s in "LR" for b in ("shoulder", "upper_arm_fk", "forearm_fk", "hand_fk", "thigh_fk", "shin_fk",
                                          "foot_fk", "toe_fk", "upper_arm_ik", "thigh_ik", "foot_ik")]
)
VROID = ["Root", "J_Bip_C_Hips", "J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest", "J_Bip_C_Neck", "J_Bip_C_Head"] + [
    f"J_Bip_{s}_{b}" for s in "LR" for b in ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot", "ToeBase")
]
VRM_HUMANOID = ["hips", "spine", "chest", "upperChest", "neck", "head"] + [
    f"{s}{b}" for s in ("left", "right") for b in ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot", "Toes")
]
SMPL_MESHCAPADE = ["root"] + [f"m_avg_{n}" for n in (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle", "Spine3", "L_Foot", "R_Foot",
    "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand")]
SMPLX = ["root", "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
         "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
         "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "left_index1"]


@pytest.mark.parametrize("bones,preset,arm_bone", [
    (MIXAMO, "mixamo", "LeftArm"),
    (["mixamorig:" + b for b in MIXAMO], "mixamo", "mixamorig:LeftArm"),
    (["mixamorig1:" + b for b in MIXAMO], "mixamo", "mixamorig1:LeftArm"),
    (["mixamorig_" + b for b in MIXAMO], "mixamo", "mixamorig_LeftArm"),
    (CMU, "cmu", "LeftArm"),
    (UE4, "ue4", "upperarm_l"),
    (UE5, "ue5", "upperarm_l"),
    (RIGIFY_METARIG, "rigify", "upper_arm.L"),
    ([f"DEF-{b}" for b in RIGIFY_METARIG], "rigify", "DEF-upper_arm.L"),
    (RIGIFY_GENERATED, "rigify_fk", "upper_arm_fk.L"),
    (VROID, "vroid", "J_Bip_L_UpperArm"),
    (VRM_HUMANOID, "vroid", "leftUpperArm"),
    (SMPL_MESHCAPADE, "smpl", "m_avg_L_Shoulder"),
    (SMPLX, "smpl", "left_shoulder"),
])
def test_detection_picks_the_family_and_the_rigs_own_names(bones, preset, arm_bone):
    rig_map = detect_rig_map(bones)
    assert rig_map.name == preset
    assert rig_map.missing == []
    assert rig_map.bones["left_shoulder"] == arm_bone
    assert len(set(rig_map.bones.values())) == len(rig_map.bones)  # no bone plays two joints


def test_ue5_maps_three_of_its_five_spine_bones():
    bones = detect_rig_map(UE5).bones
    assert (bones["spine1"], bones["spine2"], bones["spine3"]) == ("spine_02", "spine_04", "spine_05")
    assert detect_rig_map(UE5).root == "root"


def test_missing_required_bones_are_reported():
    rig_map = detect_rig_map([b for b in MIXAMO if b not in ("Hips", "LeftForeArm")])
    assert rig_map.name == "mixamo"
    assert rig_map.missing == ["pelvis", "left_elbow"]
    assert "pelvis (hips)" in rig_map.describe_missing() and "left_elbow (left forearm)" in rig_map.describe_missing()
    with pytest.raises(ValueError, match=r"pelvis \(hips, e\.g\. 'Hips'\), left_elbow \(left forearm, e\.g\. 'LeftForeArm'\)"):
        check_rig_map(rig_map, MIXAMO)


def test_unrecognisable_rig_is_an_error():
    with pytest.raises(ValueError, match="could not recognise the rig"):
        detect_rig_map(["Bone", "Bone.001", "Bone.002"])


def test_normalisation():
    assert normalize_bone_name("mixamorig:LeftArm") == normalize_bone_name("Left Arm") == "leftarm"
    assert normalize_bone_name("DEF-upper_arm.L") == "upperarml"
    assert normalize_bone_name("Character1:Hips") == "hips"


def test_json_map_round_trip_with_joint_aliases(tmp_path):
    path = tmp_path / "my_rig.json"
    bones = {"pelvis": "Root_M", "L_Hip": "Hip_L", "r_knee": "Knee_R", "Spine": "Spine1_M"}
    path.write_text(json.dumps({"name": "my_rig", "bones": bones, "root": "Main"}))
    rig_map = load_rig_map(path)
    assert rig_map.name == "my_rig" and rig_map.root == "Main"
    assert rig_map.bones == {"pelvis": "Root_M", "left_hip": "Hip_L", "right_knee": "Knee_R", "spine1": "Spine1_M"}
    assert "right_hip" in rig_map.missing and "pelvis" not in rig_map.missing
    again = load_rig_map(save_rig_map(rig_map, tmp_path / "copy.json"))
    assert again == rig_map


@pytest.mark.parametrize("text,message", [
    ("{not json", r"bad\.json: not valid JSON"),
    ('{"name": "x"}', "needs a 'bones' object"),
    ('{"bones": {"left_tail": "Tail"}}', "unknown SMPL-22 joint 'left_tail'"),
    ('{"bones": {"pelvis": 3}}', "the bone for 'pelvis' must be a non-empty string"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_json_maps_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_rig_map(path)


def test_every_preset_is_complete():
    for name, rig_map in PRESETS.items():
        assert rig_map.missing == [] and len(rig_map.bones) == 22, name
