"""The documentation holds together: README.md and docs/*.md.

* every relative link resolves to a file, and every #anchor to a heading of its page, with
  GitHub's rules for heading ids (lowercase, spaces to '-', punctuation dropped, a code span
  keeps its text, the second "Foo" heading is foo-1, the third foo-2);
* every `make <target>` the pages name exists in the Makefile;
* README.md stays a gateway: at most 15 KB.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 15 * 1024

_FENCE = re.compile(r"^ {0,3}(`{3,}(?=[^`]*$)|~{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_LINK = re.compile(  # [text](target "title"), text may hold [brackets]
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_HTML_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
_TARGET = re.compile(r"[a-z][a-z0-9-]*")
_BEFORE_MAKE = {"$", ";", "&&", "||", "|", "(", "then", "do"}


def prose_and_code(text: str) -> tuple[list[str], list[str]]:
    """The lines outside fenced code blocks, and the lines inside them."""
    prose: list[str] = []
    code: list[str] = []
    fence = ""  # the opening fence while inside a block
    for line in text.splitlines():
        m = _FENCE.match(line)
        if not fence and m:
            fence = m.group(1)
        elif fence and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                and not line.strip().strip(fence[0]):
            fence = ""
        else:
            (code if fence else prose).append(line)
    return prose, code


def slug(heading: str) -> str:
    """GitHub's id for a heading's text (github-slugger, on the rendered text)."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags go
    text = re.sub(r"(\*\*|__|\*)", "", text)  # emphasis markers are not text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose, _ = prose_and_code(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for line in prose:
        found |= set(_HTML_ID.findall(line))
        if m := _HEADING.match(line):
            base = slug(m.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """Every link target of a page, outside code blocks and code spans."""
    prose, _ = prose_and_code(page.read_text(encoding="utf-8"))
    targets = []
    for line in prose:
        if m := _REFERENCE_DEF.match(line):
            targets.append(m.group(1))
            continue
        targets += _INLINE_LINK.findall(_CODE_SPAN.sub("", line))
    return targets


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(ROOT)}: ({target})"
        if not dest.is_relative_to(ROOT):
            problems.append(f"{where}: outside the repository (GitHub cannot show it)")
        elif not dest.exists():
            problems.append(f"{where}: no file {dest.relative_to(ROOT)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
        elif anchor and dest.suffix != ".md":
            problems.append(f"{where}: an anchor into a file that is not a page")
    return problems


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))


def make_targets_named(page: Path) -> set[str]:
    """Targets of every `make ...` in a code span or a code block (options and VAR=value
    arguments are not targets)."""
    prose, code = prose_and_code(page.read_text(encoding="utf-8"))
    commands = [line.split(" #")[0] for line in code]
    commands += [m.group(2) for line in prose for m in _CODE_SPAN.finditer(line)]
    named = set()
    for command in commands:
        words = command.split()
        for i, word in enumerate(words):
            if word != "make" or (i and words[i - 1] not in _BEFORE_MAKE
                                  and "=" not in words[i - 1]):
                continue
            for arg in words[i + 1:]:
                if arg.startswith("-") or "=" in arg:
                    continue
                if not _TARGET.fullmatch(arg):
                    break
                named.add(arg)
    return named


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_and_anchors_resolve(page: Path) -> None:
    problems = broken_links(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_named_exists(page: Path) -> None:
    missing = make_targets_named(page) - makefile_targets()
    assert not missing, f"{page.relative_to(ROOT)} names make targets the Makefile lacks: " \
                        f"{sorted(missing)}"


def test_readme_is_a_gateway() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """GitHub's ids, and a broken link, anchor and target are each caught."""
    assert slug("Deploying to a staging host") == "deploying-to-a-staging-host"
    assert slug("First notification: `--rules.alert.resend-delay=10s`") == \
        "first-notification---rulesalertresend-delay10s"
    assert slug("Docker hosts: Linux, Docker Desktop, WSL, rootless") == \
        "docker-hosts-linux-docker-desktop-wsl-rootless"
    assert slug("What changed from the guide, and why") == "what-changed-from-the-guide-and-why"
    page = tmp_path / "page.md"
    page.write_text("# Title\n## Tests\n## Tests\n```sh\n# not a heading\n"
                    "$ make nothing-here   # make comment\n```\n"
                    "See [a](#tests-1), [b](#tests-2), [c](missing.md), [d](#title), "
                    "`make up PROFILES= -j2`, `[e](#in-a-code-span)`, ```` ```sh ````,\n"
                    "`CI=true make test-live`, `dev/lint.sh` (what make runs), [f](../x.md).\n")
    assert anchors(page) == {"title", "tests", "tests-1"}
    assert links(page) == ["#tests-1", "#tests-2", "missing.md", "#title", "../x.md"]
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        problems = broken_links(page)
    finally:
        ROOT = saved
    assert problems == ["page.md: (#tests-2): no heading #tests-2 in page.md",
                        "page.md: (missing.md): no file missing.md",
                        "page.md: (../x.md): outside the repository (GitHub cannot show it)"]
    assert make_targets_named(page) == {"nothing-here", "up", "test-live"}
    assert {"up", "test", "help"} <= makefile_targets()
    assert "PY" not in makefile_targets() and "VENV" not in makefile_targets()
