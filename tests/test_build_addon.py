"""build_addon.py: vendoring, wheel selection, the manifest, and the real zip installed by Blender."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import build_addon  # noqa: E402


def test_stage_vendors_retarget_and_protocol_as_package_relative(tmp_path):
    out = build_addon.stage(tmp_path)
    assert (out / "protocol.py").exists() and (out / "retarget" / "transfer.py").exists()
    for module in list((out / "retarget").glob("*.py")) + [out / "protocol.py"]:
        text = module.read_text()
        assert "from retarget" not in text and "import retarget" not in text, module.name
    assert "from .rotations import" in (out / "retarget" / "joints_to_rotations.py").read_text()
    # Add SMPL body reads the user's model file with the backend's restricted unpickler, vendored
    smpl_files = (out / "smpl_files.py").read_text()
    assert "class _SafeUnpickler" in smpl_files and "import scipy" not in smpl_files and "torch" not in smpl_files


def test_vendoring_refuses_modules_that_cannot_run_in_blender(tmp_path):
    heavy = tmp_path / "heavy.py"
    heavy.write_text("import torch\n")
    with pytest.raises(build_addon.BuildError, match="torch"):
        build_addon._vendor(heavy, tmp_path / "out.py")


def _fake_wheels(folder: Path) -> None:
    names = [
        "pyzmq-26.4.0-cp311-cp311-manylinux_2_28_x86_64.whl", "pyzmq-26.4.0-cp313-cp313-manylinux_2_28_x86_64.whl",
        "pyzmq-26.4.0-cp311-cp311-macosx_10_15_universal2.whl", "pyzmq-26.4.0-cp313-cp313-macosx_10_15_universal2.whl",
        "pyzmq-27.3.0-cp312-abi3-manylinux_2_28_x86_64.whl",
        "msgpack-1.2.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "msgpack-1.2.4-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "msgpack-1.2.4-cp311-cp311-macosx_11_0_arm64.whl", "msgpack-1.2.4-cp313-cp313-macosx_11_0_arm64.whl",
    ]
    for name in names:
        (folder / name).write_bytes(b"")


def test_wheels_are_chosen_per_platform_for_both_pythons(tmp_path):
    _fake_wheels(tmp_path)
    linux = [w.name for w in build_addon.select_wheels("linux-x64", tmp_path)]
    assert len(linux) == 4 and all("x86_64" in n and "abi3" not in n for n in linux)
    mac = [w.name for w in build_addon.select_wheels("macos-arm64", tmp_path)]
    assert {n.split("-")[2] for n in mac} == {"cp311", "cp313"} and any("universal2" in n for n in mac)
    with pytest.raises(build_addon.BuildError, match="windows-x64"):
        build_addon.select_wheels("windows-x64", tmp_path)


def test_manifest_lists_the_platform_and_its_wheels(tmp_path):
    _fake_wheels(tmp_path)
    wheels = build_addon.select_wheels("linux-x64", tmp_path)
    meta = tomllib.loads(build_addon._manifest_for("linux-x64", wheels))
    assert meta["platforms"] == ["linux-x64"]
    assert meta["wheels"] == [f"./wheels/{w.name}" for w in wheels]
    assert meta["blender_version_min"] >= "4.2.0" and "network" in meta["permissions"]


INSTALL_SCRIPT = r"""
import json, sys, bpy, addon_utils
result = {}
bpy.ops.extensions.package_install_files(repo="user_default", filepath=sys.argv[1], enable_on_install=True)
module = "bl_ext.user_default.irg_motion"
result["enabled"] = module in bpy.context.preferences.addons
result["panel"] = hasattr(bpy.types, "IRGMOTION_PT_main")
result["scene_props"] = hasattr(bpy.context.scene, "irg_motion")
import zmq
result["zmq"] = [zmq.__version__, zmq.__file__]
result["generate_poll"] = bpy.ops.irg_motion.generate.poll()
bpy.ops.preferences.addon_disable(module=module)
result["panel_after_disable"] = hasattr(bpy.types, "IRGMOTION_PT_main")
print("RESULT " + json.dumps(result))
"""


@pytest.mark.slow
def test_built_zip_installs_as_an_extension_and_unregisters(tmp_path):
    pytest.importorskip("bpy")
    out = tmp_path / "dist"
    done = subprocess.run([sys.executable, str(ROOT / "build_addon.py"), "--current-platform", "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (zip_path,) = out.glob("*.zip")
    names = zipfile.ZipFile(zip_path).namelist()
    assert "blender_manifest.toml" in names and "retarget/blender_io.py" in names and "protocol.py" in names
    assert "smpl_files.py" in names and "smpl_body.py" in names
    assert sum(n.startswith("wheels/pyzmq-26.4.0") for n in names) == 2

    # Blender appends the extensions' site-packages after this venv's; put it first (as it is in a Blender
    # without pyzmq) so the add-on must run on the bundled wheels rather than on the venv's pyzmq 27.
    site = tmp_path / "user" / "extensions" / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True)
    # Blender's own validator, shipped inside the bpy wheel (what extensions.blender.org runs too).
    bpy_dir = Path(importlib.util.find_spec("bpy").origin).parent
    (validator,) = bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")
    check = subprocess.run([sys.executable, str(validator), "validate", str(zip_path)], capture_output=True, text=True)
    assert check.returncode == 0 and "FATAL" not in check.stdout + check.stderr, check.stdout + check.stderr

    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user"), "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(zip_path)], capture_output=True, text=True,
                         env=env, timeout=180)
    line = next((l for l in run.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(line[len("RESULT "):])
    assert result["enabled"] and result["panel"] and result["scene_props"] and result["generate_poll"]
    assert result["zmq"][0] == "26.4.0" and str(tmp_path / "user") in result["zmq"][1]  # the bundled wheel
    assert not result["panel_after_disable"]
