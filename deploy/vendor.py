"""Copy the pinned browser libraries' released files into static/vendor/<package>/ (`make vendor`).

    python deploy/vendor.py NODE_MODULES

NODE_MODULES is what `npm ci` installed from package.json and package-lock.json (the make
target does that in a temporary directory). package.json's "vendor" names each package's files;
each lands in static/vendor/<package>/ under its own base name, and nothing else stays there.
tests/test_vendor.py checks the committed files against the registry's tarballs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"


def main(node_modules: Path) -> None:
    wanted = json.loads((ROOT / "package.json").read_text())["vendor"]
    locked = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for package, files in sorted(wanted.items()):
        installed = json.loads((node_modules / package / "package.json").read_text())["version"]
        pinned = locked[f"node_modules/{package}"]["version"]
        if installed != pinned:
            sys.exit(f"{package}: node_modules has {installed}, package-lock.json pins {pinned}")
        target = VENDOR / package
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in files:
            shutil.copyfile(node_modules / package / name, target / Path(name).name)
        print(f"static/vendor/{package}/: {package} {pinned} ({', '.join(Path(n).name for n in files)})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
