"""A small synthetic body model in SMPL's file format (the real one is licensed and cannot ship):
24 joints at SMPL's neutral joint locations, a cube of 8 vertices around each joint skinned to it,
a joint regressor that averages each cube, shape directions that scale the body, zero pose correctives."""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

from retarget.skeleton import PARENTS, REST_JOINTS

SMPL_PARENTS = list(PARENTS) + [20, 21]  # SMPL adds a hand joint after each wrist
CUBE = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64) * 0.03
CUBE_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                       [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def synthetic_smpl_arrays(num_betas: int = 10) -> dict:
    joints = np.concatenate([REST_JOINTS, REST_JOINTS[20:22] + np.array([[0.08, 0, 0], [-0.08, 0, 0]])])
    n = len(joints)
    verts = (joints[:, None] + CUBE[None]).reshape(-1, 3)
    faces = (CUBE_FACES[None] + 8 * np.arange(n)[:, None, None]).reshape(-1, 3)
    regressor = np.kron(np.eye(n), np.full((1, 8), 1 / 8))
    weights = np.kron(np.eye(n), np.ones((8, 1)))
    rng = np.random.default_rng(7)
    shapedirs = np.zeros((len(verts), 3, num_betas))
    shapedirs[:, :, 0] = 0.05 * (verts - verts.mean(0))  # beta 0: overall size
    for b in range(1, num_betas):  # the rest: move whole cubes, i.e. change bone lengths
        shapedirs[:, :, b] = np.repeat(rng.normal(0, 0.005, (n, 3)), 8, axis=0)
    kintree = np.array([[4294967295] + SMPL_PARENTS[1:], list(range(n))], dtype=np.int64)
    return {"v_template": verts, "f": faces.astype(np.uint32), "J_regressor": scipy.sparse.csc_matrix(regressor),
            "weights": weights, "kintree_table": kintree, "shapedirs": shapedirs,
            "posedirs": np.zeros((len(verts), 3, 207))}


def write_synthetic_smpl(folder: Path, chumpy: bool = False) -> Path:
    """Write SMPL_NEUTRAL.pkl; with chumpy=True the shape directions are pickled as chumpy objects, like
    the official 1.0 files, so the loader's chumpy stand-in is exercised."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = synthetic_smpl_arrays()
    if chumpy:
        module = types.ModuleType("chumpy.ch")

        class Ch:  # pickles as chumpy.ch.Ch with its array in the state, like the real thing
            pass

        Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
        module.Ch = Ch
        package = types.ModuleType("chumpy")
        package.ch = module
        sys.modules.update({"chumpy": package, "chumpy.ch": module})
        try:
            wrapped = Ch()
            wrapped.__dict__["x"] = arrays["shapedirs"]
            arrays["shapedirs"] = wrapped
            data = pickle.dumps(arrays, protocol=2)
        finally:
            del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    else:
        data = pickle.dumps(arrays, protocol=2)
    path = folder / "SMPL_NEUTRAL.pkl"
    path.write_bytes(data)
    return path
