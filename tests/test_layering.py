"""The house drawn from its imports: no circles, the library below the orchestration, evaluation and training apart,
masks handled in one module.

The graph is read from the source with `ast` (nothing is imported): every `import` and `from ... import`, at module
level or inside functions, relative ones resolved. An import names the module it names (`from a.b import c` is an
edge to `a.b.c` when that is a module, else to `a.b`); imports done by name at run time (`importlib`, the registry)
are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pixsearch_core", "indexing", "jobs", "pipelines", "airflow_dags")
ORCHESTRATION = ("pipelines", "jobs", "airflow_dags")


def module_files(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(node: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative: from the module's package, one level up per extra dot
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]


def import_graph(root: Path = ROOT, packages=PACKAGES) -> nx.DiGraph:
    """Module -> module edges among `packages` (imports of anything else are left out)."""
    known = module_files(root, packages)
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for module, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for name in _imported(node, module, path.name == "__init__.py", known):
                while name and name not in known:  # `import a.b.func`-style names: the nearest module
                    name = name.rpartition(".")[0]
                if name and name != module:
                    graph.add_edge(module, name, line=node.lineno)
    return graph


def _edges(graph: nx.DiGraph, source: tuple[str, ...], target: tuple[str, ...]) -> list[str]:
    def under(name: str, prefixes: tuple[str, ...]) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    return [
        f"{a} -> {b} (line {d['line']})" for a, b, d in graph.edges(data=True) if under(a, source) and under(b, target)
    ]


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


def test_the_drawing_sees_function_level_and_relative_imports(graph, tmp_path):
    # known edges of the real tree: a module-level one and one inside a method
    assert graph.has_edge("pixsearch_core.retrieval.codec", "pixsearch_core.masks")
    assert graph.has_edge("pixsearch_core.retrieval.backends", "indexing.searcher")
    assert graph.number_of_edges() > 300
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from ..a import f\n")
    (pkg / "sub" / "b.py").write_text("import pkg.a\nfrom pkg import sub\n")
    small = import_graph(tmp_path, ("pkg",))
    assert set(small.edges) == {
        ("pkg.a", "pkg.sub.b"),
        ("pkg.sub", "pkg.a"),
        ("pkg.sub.b", "pkg.a"),
        ("pkg.sub.b", "pkg.sub"),
    }
    assert sorted(map(sorted, nx.simple_cycles(small))) == [["pkg.a", "pkg.sub", "pkg.sub.b"], ["pkg.a", "pkg.sub.b"]]


def test_no_import_circles(graph):
    cycles = sorted(sorted(c) for c in nx.simple_cycles(graph))
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_library_never_imports_orchestration(graph):
    assert not _edges(graph, ("pixsearch_core",), ORCHESTRATION)


def test_evaluation_and_training_do_not_import_each_other(graph):
    ev, tr = ("pixsearch_core.evaluation",), ("pixsearch_core.training",)
    assert not _edges(graph, ev, tr) + _edges(graph, tr, ev)


def _names_rle(name: str) -> bool:
    """An RLE function by its name: "rle" as a word (`rle_to_mask`, `mask_to_rle`, `_rle`), not inside another word
    (`batch_repeat_interleave`)."""
    return "rle" in name.lower().split("_")


def test_rle_name_rule():
    assert all(map(_names_rle, ("rle_to_mask", "mask_to_rle", "_rle", "decode_RLE")))
    assert not any(map(_names_rle, ("batch_repeat_interleave", "interleave_rows")))


def test_masks_are_encoded_and_decoded_in_one_module():
    """Only pixsearch_core/masks.py defines RLE functions or uses pycocotools (COCO's RLE and polygon codec)."""
    owner = ROOT / "pixsearch_core" / "masks.py"
    assert owner.exists()
    found = []
    for module, path in module_files().items():
        if path == owner:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _names_rle(node.name):
                found.append(f"{module}: def {node.name} (line {node.lineno})")
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if any(n.split(".")[0] == "pycocotools" for n in names):
                    found.append(f"{module}: imports pycocotools (line {node.lineno})")
    assert not found, "mask coding outside pixsearch_core/masks.py:\n" + "\n".join(found)


def test_readme_layout_table_names_every_package_and_library_module():
    """README's Layout table has a row per top-level package, and the library's row names each of its modules."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`").rstrip("/"): line for line in table.splitlines() if line.startswith("| `")
    }
    assert set(PACKAGES) <= set(rows), f"no Layout row for {sorted(set(PACKAGES) - set(rows))}"
    library = ROOT / "pixsearch_core"
    children = [p.name + "/" for p in library.iterdir() if (p / "__init__.py").exists()]
    children += [p.name for p in library.glob("*.py") if p.name != "__init__.py"]
    unnamed = sorted(c for c in children if f"`{c}`" not in rows["pixsearch_core"])
    assert not unnamed, f"README's Layout row for pixsearch_core/ does not name {unnamed}"
