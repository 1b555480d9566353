"""The manual's links hold: every relative link and #anchor in README.md and docs/*.md names something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USER_FACING = ["README.md", "docs/frontend.md", "docs/operations.md", "docs/security.md"]

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", flags=re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", flags=re.DOTALL)
_MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""\b(?:href|src)=["']([^"']+)["']""")
_HTML_ANCHOR = re.compile(r"""<a\s+(?:id|name)=["']([^"']+)["']""")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", flags=re.MULTILINE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def manual() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text: str) -> str:
    """The text a reader sees as prose: code blocks and code spans hold no links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lowercased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file offers, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set(_HTML_ANCHOR.findall(text))
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(root: Path, files: list[Path]) -> list[str]:
    """`file: target (why)` for every relative link or anchor in `files` that resolves to nothing."""
    problems: list[str] = []
    for file in files:
        prose = _prose(file.read_text())
        for target in [*_MD_LINK.findall(prose), *_HTML_LINK.findall(prose)]:
            if _SCHEME.match(target) or target.startswith("//"):
                continue  # another site: not ours to check offline
            path_part, _, anchor = target.partition("#")
            where = file if not path_part else (file.parent / path_part).resolve()
            name = f"{file.relative_to(root)}: {target}"
            if not where.is_relative_to(root.resolve()) or not where.exists():
                problems.append(f"{name} (no such file)")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where.read_text()):
                problems.append(f"{name} (no such anchor)")
    return problems


def test_every_link_in_the_manual_resolves() -> None:
    assert broken_links(ROOT, manual()) == []


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## `GET /auth/login`, the start\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/guide.md#get-authlogin-the-start) [ok](#top) [web](https://example.com/x#y)\n"
        "[gone](docs/missing.md) [bad anchor](docs/guide.md#nowhere) [bad here](#nope)\n"
        "`[in code](docs/missing.md)`\n\n```\n[in a block](docs/missing.md)\n```\n\n# Top\n"
    )
    assert broken_links(tmp_path, [readme]) == [
        "README.md: docs/missing.md (no such file)",
        "README.md: docs/guide.md#nowhere (no such anchor)",
        "README.md: #nope (no such anchor)",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("`POST /cart/buyer-identity`", "post-cartbuyer-identity"),
        ("(a) Rotate the Shopify client credential", "a-rotate-the-shopify-client-credential"),
        ("`GET /auth/sessions`, `POST /auth/sessions/{handle}/end`", "get-authsessions-post-authsessionshandleend"),
        ("What the front proxy must still cap", "what-the-front-proxy-must-still-cap"),
    ],
)
def test_anchors_are_made_the_way_github_makes_them(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


@pytest.mark.parametrize("name", USER_FACING)
def test_the_user_facing_parts_hold_no_internal_targets_or_cpu_figures(name: str) -> None:
    # Targets and CPU per request are for those working on the BFF (docs/internals.md, bench/results.md).
    text = (ROOT / name).read_text()
    assert re.findall(r"µs|\bnot met\b|\btargets? (?:is |are )?met\b", text) == []
