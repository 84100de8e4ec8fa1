"""README links stay inside the repository: every relative link (Markdown or image) names a
file that is in the checkout, and none climbs out of it (``../``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", t)]


def test_readme_relative_links_name_files_inside_the_repository() -> None:
    links = relative_links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert links  # the images and docs links are found
    for link in links:
        target = (ROOT / link.split("#")[0]).resolve()
        assert target.is_relative_to(ROOT), f"{link} points outside the repository"
        assert target.exists(), f"{link} does not exist"


def test_a_link_climbing_out_of_the_repository_is_caught() -> None:
    [link] = relative_links("see [the design](../shared/DESIGN.md) and [web](https://x.org)")
    assert not (ROOT / link).resolve().is_relative_to(ROOT)
