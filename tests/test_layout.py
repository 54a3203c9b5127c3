"""The package is layered as the README's layout section says: imports point down, never in a cycle.

Read from the source (every import, also the ones inside functions), so a lazy import that climbs
back up a layer fails here as surely as a top-level one.
"""

import ast
import re
import subprocess
import sys

from conftest import ROOT

PACKAGE = ROOT / "annotator"
# lowest first: a module may import from its own layer and the layers below it
LAYERS = [
    {"errors", "records", "io", "config", "taxonomy", "stats", "features"},  # shared
    {"llm"},
    {"labeling"},
    {"review"},
    {"diagnose"},
    {"plan", "corpus"},
    {"cli"},
]


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module):
    top = module.split(".")[1] if module.count(".") else None
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return None


def imports():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("annotator"):
                for alias in node.names:  # `from annotator.x import y`: y may be a module of x
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("annotator")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_every_module_belongs_to_a_layer():
    unplaced = [m for m in imports() if m != "annotator" and layer(m) is None]
    assert not unplaced, f"modules outside the README's layers: {unplaced}"


def test_imports_point_down_only():
    upward = []
    for module, targets in imports().items():
        if module == "annotator":  # the public API re-exports from above, lazily
            continue
        for target in targets:
            if target != "annotator" and layer(target) > layer(module):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that climb back up a layer: " + ", ".join(sorted(upward))


def test_no_import_cycle():
    graph = imports()
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in graph:
        if node not in state and node != "annotator":
            visit(node, [node])


def test_review_rules_and_the_public_api_import_without_argilla():
    code = ("import sys, annotator, annotator.review, annotator.review.resolve, annotator.review.gate, "
            "annotator.review.queue, annotator.review.layout\n"
            "assert callable(annotator.gate)\n"
            "assert 'argilla' not in sys.modules, 'argilla imported'\n"
            "assert 'openai' not in sys.modules and 'instructor' not in sys.modules, 'the LLM stack imported'\n"
            "assert callable(annotator.label) and annotator.Item and annotator.Annotation\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_the_readme_layout_names_every_module_and_only_those():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Layout"):]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[1].isdigit():
            rows[cells[2].strip("`/")] = cells[3]
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name in ("__init__.py", "__main__.py"):
            continue
        package = rel.parts[0] if len(rel.parts) > 1 else "shared"
        assert package in rows, f"{package}: no row in the README's layout"
        assert f"`{rel.stem}`" in rows[package], f"annotator/{rel}: not in the README's layout row of {package}"
    for package, row in rows.items():  # and every name a row gives outside parentheses is a module there
        folder = PACKAGE if package == "shared" else PACKAGE / package
        for name in re.findall(r"`([^`]+)`", outside_parentheses(row)):
            assert (folder / f"{name}.py").is_file(), f"README layout names {package}/{name}.py, which is not there"


def outside_parentheses(text):
    depth, out = 0, []
    for ch in text:
        depth += ch == "("
        if depth == 0:
            out.append(ch)
        depth -= ch == ")"
    return "".join(out)
