"""Writing an animated SMPL body as mesh files through trimesh: a GLB holding one mesh node per frame
(a mesh sequence any glTF viewer opens), or one OBJ/PLY file per frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

MESH_FORMATS = (".glb", ".obj", ".ply")


def write_mesh_sequence(vertices: np.ndarray, faces: np.ndarray, out: str | Path, sequence: bool = False) -> list[Path]:
    """vertices (T, V, 3) metres Y up. GLB: one file, frame nodes `frame_0000`...; with `sequence` (or for OBJ/PLY)
    one file per frame named `<stem>_0000<suffix>`. Returns the written paths."""
    out = Path(out)
    if out.suffix.lower() not in MESH_FORMATS:
        raise ValueError(f"mesh output must end in {', '.join(MESH_FORMATS)}, got {out.name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    meshes = [trimesh.Trimesh(vertices=v, faces=faces, process=False) for v in vertices]
    if out.suffix.lower() == ".glb" and not sequence:
        scene = trimesh.Scene()
        for i, mesh in enumerate(meshes):
            scene.add_geometry(mesh, node_name=f"frame_{i:04d}", geom_name=f"frame_{i:04d}")
        out.write_bytes(scene.export(file_type="glb"))
        return [out]
    paths = []
    for i, mesh in enumerate(meshes):
        path = out.with_name(f"{out.stem}_{i:04d}{out.suffix}")
        mesh.export(path)
        paths.append(path)
    return paths
