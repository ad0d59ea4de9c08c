"""Layout of the selector package: light to import, no import cycles, small modules, old import paths still work."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import bumphunt.selection

PACKAGE = "bumphunt.selection"
FOLDER = Path(bumphunt.selection.__file__).parent
MODULES = sorted(p.stem for p in FOLDER.glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    """Modules of this package imported anywhere in ``path`` (module level, functions, TYPE_CHECKING blocks)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    out.add(node.module.split(".")[0])
                else:
                    out.update(alias.name for alias in node.names)
            elif node.level == 0 and node.module and node.module.startswith(PACKAGE + "."):
                out.add(node.module[len(PACKAGE) + 1:].split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name[len(PACKAGE) + 1:].split(".")[0] for a in node.names if a.name.startswith(PACKAGE + "."))
    return out & set(MODULES)


def test_import_does_not_load_tensorflow() -> None:
    code = ("import sys; import bumphunt.selection, bumphunt.selection.selector, bumphunt.selection.training; "
            "heavy = [m for m in ('tensorflow', 'keras', 'zfit') if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_import_cycles_between_modules() -> None:
    graph = {m: _imported_modules(FOLDER / f"{m}.py") - {m} for m in MODULES if m != "__init__"}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            assert state.get(n) != 1, f"import cycle: {' -> '.join([*stack, m, n])}"
            if n not in state:
                visit(n, [*stack, m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_modules_are_small_and_private_helpers_stay_private() -> None:
    for m in MODULES:
        text = (FOLDER / f"{m}.py").read_text()
        assert text.count("\n") <= 500, f"{m}.py has {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("bumphunt")):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                assert not private, f"{m}.py imports private name(s) {private} from {node.module}"


def test_public_contract_and_exports() -> None:
    from bumphunt.selection.figures_of_merit import punzi_sensitivity

    assert bumphunt.selection.punzi_sensitivity is punzi_sensitivity
    for name in bumphunt.selection.__all__:
        assert hasattr(bumphunt.selection, name), name
