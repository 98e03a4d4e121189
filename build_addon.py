"""Build the IRG Motion Blender extension: one installable zip per platform.

    python build_addon.py                      # every platform, wheels fetched with pip into the cache
    python build_addon.py --current-platform   # just this machine's platform
    python build_addon.py --wheels DIR         # offline: take the wheels from DIR, download nothing

The zip holds blender_addon/, a copy of retarget/, backend/protocol.py and backend/body/smpl_files.py (imports rewritten to be
package-relative, checked to need nothing heavier than numpy, msgpack, pyzmq and bpy), and pyzmq and
msgpack wheels for CPython 3.11 (Blender 4.2-5.0) and 3.13 (Blender 5.1+). pyzmq stays at 26.4.0:
27 ships cp312-abi3 wheels for new Pythons, and Blender reads {cp311, abi3} as "3.11 only", so 5.1
would refuse the extension.
"""
from __future__ import annotations

import argparse
import ast
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON = ROOT / "blender_addon"
PINS = ("pyzmq==26.4.0", "msgpack==1.2.4")
PYTHONS = ("311", "313")
# Blender platform -> (pip --platform tags, test for a wheel's platform tag). pip widens a macOS tag to
# older versions and universal2 by itself, but not a manylinux tag to older glibc ones.
PLATFORMS = {
    "linux-x64": (("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"), lambda tag: tag.startswith("manylinux") and tag.endswith("x86_64")),
    "windows-x64": (("win_amd64",), lambda tag: tag == "win_amd64"),
    "macos-arm64": (("macosx_11_0_arm64",), lambda tag: tag.startswith("macosx") and tag.endswith(("arm64", "universal2"))),
    "macos-x64": (("macosx_10_15_x86_64",), lambda tag: tag.startswith("macosx") and tag.endswith(("x86_64", "universal2"))),
}
# What vendored modules may import; anything else (torch, backend.*, training.*) fails the build.
ALLOWED_IMPORTS = {"numpy", "msgpack", "zmq", "bpy", "bpy_extras", "mathutils", "addon_utils", "retarget"}
DEFAULT_CACHE = Path.home() / ".cache" / "irg-motion" / "addon-wheels"


class BuildError(Exception):
    pass


def manifest() -> dict:
    return tomllib.loads((ADDON / "blender_manifest.toml").read_text())


def current_platform() -> str:
    machine = platform.machine().lower()
    arm = machine in ("arm64", "aarch64")
    if sys.platform.startswith("linux") and not arm:
        return "linux-x64"
    if sys.platform == "win32" and not arm:
        return "windows-x64"
    if sys.platform == "darwin":
        return "macos-arm64" if arm else "macos-x64"
    raise BuildError(f"no extension build for {sys.platform} {machine}; pass --platforms")


def _vendor(source: Path, dest: Path) -> None:
    """Copy a module, turning `retarget.x` imports package-relative and refusing heavy imports."""
    text = source.read_text()
    label = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    for node in ast.walk(ast.parse(text, str(source))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        for name in names:
            top = name.split(".")[0]
            if top not in ALLOWED_IMPORTS and top not in sys.stdlib_module_names:
                raise BuildError(f"{label} imports '{name}', which cannot run inside Blender")
            if isinstance(node, ast.Import) and top == "retarget":
                raise BuildError(f"{label}: write 'from retarget... import ...' so it can be vendored")
    # Inside retarget/ the package itself is "."; the protocol module never imports retarget.
    text = re.sub(r"^(\s*)from retarget\.(\w+) import", r"\1from .\2 import", text, flags=re.M)
    text = re.sub(r"^(\s*)from retarget import", r"\1from . import", text, flags=re.M)
    dest.write_text(text)


def stage(dest: Path) -> Path:
    """Write the extension's files (no wheels) to dest/<id>/ and return that folder."""
    out = dest / manifest()["id"]
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(ADDON, out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (out / "retarget").mkdir()
    for source in sorted((ROOT / "retarget").glob("*.py")):
        _vendor(source, out / "retarget" / source.name)
    protocol = ROOT / "backend" / "protocol.py"
    if not protocol.exists():
        raise BuildError("backend/protocol.py is missing")
    _vendor(protocol, out / "protocol.py")
    smpl_files = ROOT / "backend" / "body" / "smpl_files.py"  # numpy-only SMPL file reading for Add SMPL body
    if not smpl_files.exists():
        raise BuildError("backend/body/smpl_files.py is missing")
    _vendor(smpl_files, out / "smpl_files.py")
    return out


def download_wheels(platforms: list[str], cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    for name in platforms:
        for python in PYTHONS:
            tags = [arg for tag in PLATFORMS[name][0] for arg in ("--platform", tag)]
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
                   *tags, "--python-version", python, "--implementation", "cp",
                   "--dest", str(cache), *PINS]
            if subprocess.run(cmd).returncode != 0:
                raise BuildError(f"pip could not fetch the wheels for {name} cp{python}; "
                                 "download them elsewhere and pass --wheels DIR")


def select_wheels(platform_name: str, folder: Path) -> list[Path]:
    """One wheel per pinned package and Python version that runs on `platform_name`."""
    matches = PLATFORMS[platform_name][1]
    chosen = []
    for pin in PINS:
        package, version = pin.split("==")
        for python in PYTHONS:
            found = sorted(
                w for w in folder.glob(f"{package}-{version}-cp{python}-*.whl")
                if any(matches(tag) for tag in w.stem.split("-")[-1].split("."))
            )
            if not found:
                raise BuildError(f"no {package} {version} wheel for cp{python} on {platform_name} in {folder}")
            chosen.append(found[-1])
    return chosen


def _manifest_for(platform_name: str, wheels: list[Path]) -> str:
    """The source manifest with `platforms` and `wheels` added as top-level keys (before any table)."""
    lines = (ADDON / "blender_manifest.toml").read_text().splitlines(keepends=True)
    first_table = next(i for i, line in enumerate(lines) if line.startswith("["))
    extra = [f'platforms = ["{platform_name}"]\n', "wheels = [\n"]
    extra += [f'  "./wheels/{w.name}",\n' for w in wheels] + ["]\n\n"]
    return "".join(lines[:first_table] + extra + lines[first_table:])


def write_zip(staged: Path, platform_name: str, wheels: list[Path], output_dir: Path) -> Path:
    meta = manifest()
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{meta['id']}-{meta['version']}-{platform_name.replace('-', '_')}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(staged.rglob("*")):
            if file.is_file() and file.name != "blender_manifest.toml":
                zf.write(file, file.relative_to(staged).as_posix())
        zf.writestr("blender_manifest.toml", _manifest_for(platform_name, wheels))
        for wheel in wheels:
            zf.write(wheel, f"wheels/{wheel.name}", compress_type=zipfile.ZIP_STORED)
    return path


def build(platforms: list[str], output_dir: Path, wheels_dir: Path | None, cache: Path) -> list[Path]:
    if wheels_dir is None:
        download_wheels(platforms, cache)
    folder = wheels_dir or cache
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage(Path(tmp))
        return [write_zip(staged, name, select_wheels(name, folder), output_dir) for name in platforms]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--platforms", nargs="+", choices=sorted(PLATFORMS), default=sorted(PLATFORMS))
    which.add_argument("--current-platform", action="store_true", help="build only for this machine")
    parser.add_argument("--wheels", type=Path, help="folder with the wheels already downloaded (offline build)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where pip downloads wheels to")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    try:
        platforms = [current_platform()] if args.current_platform else args.platforms
        for path in build(platforms, args.output_dir, args.wheels, args.cache):
            print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    except BuildError as exc:
        print(f"build_addon: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
