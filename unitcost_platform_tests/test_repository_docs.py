"""The repository explains itself: every document the code cites exists, and so does every section."""

import re

from unitcost_platform.settings import PROJECT_ROOT

# "docs/design.md §6", "README.md", "DESIGN.md §1-5": a document path, not `MetadataValue.md(...)`.
CITED = re.compile(r"(?<![\w.])((?:docs/[\w-]+|[A-Z][A-Z_-]*)\.md)\b(?:\s+§(\d+)(?:-(\d+))?)?")


def _python_files():
    for folder in ("unitcost_platform", "unitcost_platform_tests"):
        yield from (p for p in (PROJECT_ROOT / folder).rglob("*.py") if p.name != "test_repository_docs.py")


def test_every_cited_document_and_section_exists():
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", (PROJECT_ROOT / "docs" / "design.md").read_text(), re.M)}
    assert sections == set(range(1, 15))
    cited = 0
    for path in _python_files():
        for name, first, last in CITED.findall(path.read_text(encoding="utf-8")):
            cited += 1
            assert (PROJECT_ROOT / name).exists(), f"{path.relative_to(PROJECT_ROOT)} cites {name}, which the repository does not have"
            for n in range(int(first or 0), int(last or first or 0) + 1):
                assert not first or n in sections, f"{path.relative_to(PROJECT_ROOT)} cites {name} §{n}, which does not exist"
    assert cited >= 5  # the transforms cite their rules


def test_the_readme_points_at_the_design():
    assert "docs/design.md" in (PROJECT_ROOT / "README.md").read_text()
