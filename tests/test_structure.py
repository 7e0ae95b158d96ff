"""The layout's promises: data flows one way, and every file is short enough to read or says why.

Every ``import`` and ``from ... import`` in jcxr, at module level or inside a function, is read
from the source (``ast``), so a lazy import that reaches upstream is caught too.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "jcxr"

# Lower layers never import higher ones: libraries (stats, models, data) know nothing of a
# run; results and tracking know nothing of the trainer; the report reads what a run wrote;
# the trainer, on top, drives them all. stats, models and data do not import each other's
# training-side neighbours, and stats imports no other part of jcxr but the file helpers.
LAYERS = {
    "jcxr._io": 0,
    "jcxr._cli": 0,
    "jcxr.stats": 1,
    "jcxr.models": 2,
    "jcxr.data": 2,
    "jcxr.convergence": 2.5,  # flags from a cell's history: read by results' readers
    "jcxr.predictions": 2.8,  # scores of saved predictions: read by the trainer and the report
    "jcxr.results": 3,
    "jcxr.summary": 3.5,  # words about results: reads results, read by the report
    "jcxr.tracking": 4,
    "jcxr.explain": 4.5,  # maps and localisation: reads models, read by the report
    "jcxr.explain.__main__": 7,  # its command line restores the trainer's checkpoints
    "jcxr.report": 5,
    "jcxr.train": 6,
}
LINE_LIMIT = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """The LAYERS entry ``module`` belongs to (``jcxr`` itself: none)."""
    for name in sorted(LAYERS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return ""


def jcxr_imports(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every jcxr module ``path`` (named ``module``) imports, relative imports
    resolved."""
    tree = ast.parse(path.read_text(), str(path))
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.append((node.lineno, base))
            # `from jcxr import train` imports the subpackage itself
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, m) for line, m in found if m == "jcxr" or m.startswith("jcxr.")]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert SOURCES
    unplaced = [module_name(p) for p in SOURCES if module_name(p) != "jcxr" and not layer_of(
        module_name(p)
    )]  # fmt: skip
    assert unplaced == [], "add these modules to LAYERS"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_only_flow_downstream(path):
    own = layer_of(module_name(path))
    if not own:
        return  # the package's own __init__
    upstream = [
        f"{path.name}:{line} imports {m}"
        for line, m in jcxr_imports(path)
        if layer_of(m) and layer_of(m) != own and LAYERS[layer_of(m)] >= LAYERS[own]
    ]
    assert upstream == []


def test_the_import_check_sees_lazy_and_relative_imports(tmp_path):
    """The checker itself: a function-level import of the trainer from data is found."""
    fake = tmp_path / "probe.py"
    fake.write_text("def f():\n    from jcxr.train import sweep\n    from ..report import x\n")
    found = [m for _, m in jcxr_imports(fake, "jcxr.data.probe")]
    assert "jcxr.train" in found and "jcxr.report.x" in found
    assert layer_of("jcxr.report.x") == "jcxr.report"


def test_no_library_module_imports_the_trainer_or_the_report():
    """The issue's own wording of the rule, checked directly."""
    offenders = [
        f"{module_name(p)} imports {m}"
        for p in SOURCES
        if layer_of(module_name(p)) in ("jcxr.data", "jcxr.models", "jcxr.stats")
        for _, m in jcxr_imports(p)
        if layer_of(m) in ("jcxr.train", "jcxr.report")
    ]
    assert offenders == []


def test_stats_needs_no_other_part_of_jcxr():
    """``jcxr.stats`` is reusable alone: it imports only the shared file and CLI helpers."""
    for path in (PACKAGE / "stats").rglob("*.py"):
        others = {layer_of(m) for _, m in jcxr_imports(path) if m != "jcxr"} - {
            "jcxr.stats",
            "jcxr._io",
            "jcxr._cli",
        }
        assert others == set(), path


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_long_files_say_why_at_the_top(path):
    lines = path.read_text().splitlines()
    if len(lines) <= LINE_LIMIT:
        return
    docstring = ast.get_docstring(ast.parse("\n".join(lines))) or ""
    assert "Why this file is long" in docstring, (
        f"{path}: {len(lines)} lines (limit {LINE_LIMIT}); split it by job, or say at its top "
        "(a paragraph starting 'Why this file is long') why it is one"
    )


def test_studies_are_cited_by_authors_and_year_never_by_a_seed_file_number():
    """Users have the papers, not the project's numbered seed files: "Chizari 2021", never the
    number of the file it came in."""
    root = PACKAGE.parent
    files = [*root.glob("*.md"), *root.glob("*.toml")]
    for folder in ("jcxr", "configs", "bench", "docs", "tests"):
        files += [p for p in (root / folder).rglob("*") if p.suffix in (".py", ".md", ".txt")]
    pattern = re.compile(r"\bseeds?[ _-]?\(?0\d\d\b|\bseeds/", re.IGNORECASE)
    cited = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert cited == [], "\n".join(cited)
