"""The browser libraries under static/vendor/ are exactly the released files of the versions
package.json and package-lock.json pin: each tarball is fetched from the npm registry, checked
against the lock file's sha512 integrity, and the committed files compared byte for byte."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"
PACKAGE = json.loads((ROOT / "package.json").read_text())
LOCK = json.loads((ROOT / "package-lock.json").read_text())


def _tarball(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the lock file's https URL
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        pytest.skip(f"the npm registry is unreachable ({exc}): cannot compare static/vendor/ with {url}")


def test_every_vendored_package_is_pinned_exactly():
    locked = LOCK["packages"]
    assert locked[""]["dependencies"] == PACKAGE["dependencies"]
    for package, version in PACKAGE["dependencies"].items():
        assert version[0].isdigit(), f"{package}: pin an exact version, not {version!r}"
        assert locked[f"node_modules/{package}"]["version"] == version
    assert set(PACKAGE["vendor"]) <= set(PACKAGE["dependencies"])
    # Nothing under static/vendor/ that the make target would not put there.
    assert {p.name for p in VENDOR.iterdir() if p.is_dir()} == set(PACKAGE["vendor"])
    for package, files in PACKAGE["vendor"].items():
        assert sorted(p.name for p in (VENDOR / package).iterdir()) == sorted(Path(f).name for f in files)
        assert any("licen" in Path(f).name.lower() for f in files), f"{package}: its licence is not vendored"


@pytest.mark.parametrize("package", sorted(PACKAGE["vendor"]))
def test_vendored_files_equal_the_pinned_release(package):
    entry = LOCK["packages"][f"node_modules/{package}"]
    tarball = _tarball(entry["resolved"])
    algorithm, _, expected = entry["integrity"].partition("-")
    assert algorithm == "sha512"
    assert base64.b64encode(hashlib.sha512(tarball).digest()).decode() == expected, (
        f"{entry['resolved']} does not match package-lock.json's integrity"
    )
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in PACKAGE["vendor"][package]:
            member = archive.extractfile(f"package/{name}")
            assert member is not None, f"{package} {entry['version']} has no {name}"
            committed = (VENDOR / package / Path(name).name).read_bytes()
            assert committed == member.read(), (
                f"static/vendor/{package}/{Path(name).name} differs from {package} {entry['version']}'s {name}: "
                "run `make vendor`"
            )
