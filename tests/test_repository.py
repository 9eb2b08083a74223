"""Nothing in the repository cites a file outside it: no design notes that live elsewhere,
no paths on one machine, no Markdown link to a file the repository does not have, nor to a
heading a Markdown file does not have (the README, docs/ and every other .md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Split so that this file does not cite them itself.
OUTSIDE = re.compile(
    "|".join(
        [
            r"\b" + "DESIGN" + r"\.md\b",
            r"\b" + "CONVENTIONS" + r"\.md\b",
            r"\.\./" + r"shared\b",
            r"(?<![\w.])/" + r"(?:work|tmp)/[\w.-]+",  # an absolute path on one machine
        ]
    )
)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = []
    for name in names.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file() and b"\0" not in path.read_bytes()[:8192]:
            files.append(path)
    return files


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation but `-`
    and `_` dropped, spaces as `-`; a repeated one gets `-1`, `-2`, …"""
    anchors: set[str] = set()
    for heading in HEADING.findall(text):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, number = slug, 0
        while anchor in anchors:
            number += 1
            anchor = f"{slug}-{number}"
        anchors.add(anchor)
    return anchors


def _broken_links(path: Path, text: str) -> list[str]:
    broken = []
    for target in MARKDOWN_LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # a URL (https:, mailto:)
        local, _, anchor = target.partition("#")
        resolved = (path.parent / local).resolve() if local else path
        missing = not resolved.is_relative_to(ROOT) or not resolved.exists()
        if missing or (anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved.read_text())):
            broken.append(target)
    return broken


def test_nothing_cites_a_file_outside_the_repository():
    found = []
    for path in _tracked_text_files():
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for match in OUTSIDE.finditer(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)}")
        if path.suffix == ".md":
            found += [f"{path.relative_to(ROOT)}: link to missing {target}" for target in _broken_links(path, text)]
    assert found == []
