"""docs/architecture.md names every module of service/ and models/, under its own package."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def tree_sections() -> dict[str, str]:
    """The doc's tree block, split by package ("models", "service", "service/api", "service/api/wire", ...)."""
    block = DOC.read_text().split("```")[1]
    sections: dict[str, str] = {}
    current = package = ""
    for line in block.splitlines():
        top = re.match(r"^(models|service)/", line)
        sub = re.match(r"^  (\w+)/", line)
        subsub = re.match(r"^    (\w+)/", line)
        if top:
            current = top.group(1)
        elif sub:
            current = package = f"service/{sub.group(1)}"
        elif subsub:
            current = f"{package}/{subsub.group(1)}"
        sections[current] = sections.get(current, "") + line + "\n"
    return sections


def modules() -> list[Path]:
    files = [*ROOT.glob("service/**/*.py"), *ROOT.glob("models/**/*.py")]
    return sorted(p.relative_to(ROOT) for p in files if p.name != "__init__.py")


def test_every_module_is_named_under_its_package():
    sections = tree_sections()
    missing = [str(m) for m in modules() if not re.search(rf"\b{re.escape(m.name)}\b", sections.get(str(m.parent), ""))]
    assert not missing, f"docs/architecture.md does not name: {missing}"


def test_the_doc_names_no_module_that_does_not_exist():
    names = {m.name for m in modules()}
    named = {n for n in re.findall(r"\b(\w+\.py)\b", DOC.read_text()) if not n.startswith("test_")}  # tests/
    assert named <= names, f"no such module: {sorted(named - names)}"
