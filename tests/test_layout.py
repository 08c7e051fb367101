"""The package's shape: no import cycle among padellm's modules (imports inside functions count too), a short top
level, every package installed by pyproject.toml and described in the README's layout section."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"padellm": ROOT / "padellm", "padellm_serve": ROOT / "serve"}


def module_files() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports anywhere in its body, functions included. ``from a.b import c`` is an
    import of ``a.b.c`` when that is a module, else of ``a.b``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    found.add(f"{source}.{alias.name}")
                elif source in modules:
                    found.add(source)
    found.discard(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def test_no_import_cycle_among_the_project_modules():
    graph = import_graph()
    assert len(graph) > 40 and graph["padellm.training.lora"]  # the walk saw the package and its imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles_through_function_level_imports(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    modules = {f"pkg.{p.stem}" if p.stem != "__init__" else "pkg": p for p in package.glob("*.py")}
    graph = {name: imported_modules(path, name, modules) for name, path in modules.items()}
    assert graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("import json\n")
    graph["pkg.c"] = imported_modules(package / "c.py", "pkg.c", modules)
    assert find_cycle(graph) is None


def test_the_top_level_stays_short():
    top = sorted(p.name for p in (ROOT / "padellm").glob("*.py"))
    assert len(top) <= 10, top


def subpackages() -> list[str]:
    return sorted(p.parent.relative_to(ROOT).as_posix().replace("/", ".")
                  for p in (ROOT / "padellm").rglob("__init__.py"))


def test_pyproject_installs_every_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert sorted(set(config["tool"]["setuptools"]["packages"]) - {"padellm_serve"}) == subpackages()


def test_the_layout_document_names_every_package_and_module():
    layout = (ROOT / "docs" / "code-layout.md").read_text()
    assert "docs/code-layout.md" in (ROOT / "README.md").read_text()  # the front page links to it
    blocks = layout.split("```")[1::2]
    tree = next(block for block in blocks if block.lstrip().startswith("padellm/"))
    for package in subpackages()[1:]:
        name = package.split(".")[-1]
        assert re.search(rf"^\s+{name}/", tree, re.M), f"{package} missing from docs/code-layout.md"
    for path in (ROOT / "padellm").rglob("*.py"):
        if path.name != "__init__.py":
            assert re.search(rf"\b{re.escape(path.stem)}\b", tree), f"{path.relative_to(ROOT)} missing from docs/code-layout.md"
