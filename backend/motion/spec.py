"""The constants of HumanML3D's feature extraction for its two skeletons (t2m: SMPL-22, 263-d; kit: 21 joints, 251-d).

Values are the dataset's own (paramUtil.py and motion_representation in HumanML3D); see
reference/irg-motionllm.md section 7.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retarget import skeleton


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    joints_num: int
    raw_offsets: np.ndarray          # (J, 3) unit rest direction of the bone ending at each joint
    kinematic_chain: tuple[tuple[int, ...], ...]
    face_joints: tuple[int, int, int, int]   # r_hip, l_hip, r_shoulder, l_shoulder
    foot_right: tuple[int, int]
    foot_left: tuple[int, int]
    leg_joints: tuple[int, int]      # l_idx1, l_idx2: the two leg bones whose lengths set the scale
    fps: float
    feet_threshold: float = 0.002    # squared displacement per frame below which a foot counts as planted
    target_skeleton: str = ""        # the dataset sample whose bone lengths every motion is scaled to

    @property
    def dim(self) -> int:
        j = self.joints_num
        return 4 + (j - 1) * 3 + (j - 1) * 6 + j * 3 + 4

    @property
    def parents(self) -> np.ndarray:
        parents = np.full(self.joints_num, -1, dtype=np.int64)
        for chain in self.kinematic_chain:
            for a, b in zip(chain[:-1], chain[1:]):
                parents[b] = a
        return parents

    # Slices of the feature vector, in the dataset's order.
    @property
    def root_rot_velocity(self) -> slice:
        return slice(0, 1)

    @property
    def root_linear_velocity(self) -> slice:
        return slice(1, 3)

    @property
    def root_height(self) -> slice:
        return slice(3, 4)

    @property
    def ric(self) -> slice:
        return slice(4, 4 + (self.joints_num - 1) * 3)

    @property
    def rotations(self) -> slice:
        start = self.ric.stop
        return slice(start, start + (self.joints_num - 1) * 6)

    @property
    def local_velocity(self) -> slice:
        start = self.rotations.stop
        return slice(start, start + self.joints_num * 3)

    @property
    def foot_contact(self) -> slice:
        return slice(self.local_velocity.stop, self.dim)


T2M = FeatureSpec(
    name="t2m",
    joints_num=22,
    raw_offsets=skeleton.RAW_OFFSETS,
    kinematic_chain=skeleton.KINEMATIC_CHAIN,
    face_joints=(2, 1, 17, 16),
    foot_right=(8, 11),
    foot_left=(7, 10),
    leg_joints=(5, 8),
    fps=20.0,
    target_skeleton="000021",
)

KIT = FeatureSpec(
    name="kit",
    joints_num=21,
    raw_offsets=np.array(
        [[0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0], [0, -1, 0], [0, -1, 0],
         [-1, 0, 0], [0, -1, 0], [0, -1, 0], [1, 0, 0], [0, -1, 0], [0, -1, 0], [0, 0, 1], [0, 0, 1],
         [-1, 0, 0], [0, -1, 0], [0, -1, 0], [0, 0, 1], [0, 0, 1]],
        dtype=np.float64,
    ),
    kinematic_chain=((0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20), (0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10)),
    face_joints=(11, 16, 5, 8),
    foot_right=(14, 15),
    foot_left=(19, 20),
    leg_joints=(17, 18),
    fps=12.5,
    feet_threshold=0.05,  # KIT joints are in millimetres; the threshold scales with them (not verified)
    target_skeleton="03950",
)

SPECS = {"t2m": T2M, "humanml3d": T2M, "kit": KIT}


def spec_for_dim(dim: int) -> FeatureSpec:
    for spec in (T2M, KIT):
        if spec.dim == dim:
            return spec
    raise ValueError(f"feature vectors must be {T2M.dim}-d (HumanML3D) or {KIT.dim}-d (KIT-ML), got {dim}-d")
