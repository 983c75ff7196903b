#!/usr/bin/env python3
"""Measure the shape of the ``parley`` package against issue 17's rules (stdlib only).

Rules: no module over 500 lines; no class with more than 25 methods; production code
(everything in ``parley/`` outside ``parley/testing/``) imports nothing from
``parley.testing``; ``brain/core.py`` and ``brain/turn_stream.py`` do not import each
other. Prints what is measured and every broken rule; exits 1 if any rule is broken.

Usage: scripts/measure_tree.py [PACKAGE_DIR]   (default: the ``parley`` next to scripts/)
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_CLASS_METHODS = 25
TESTING = "parley.testing"
CYCLE_PAIR = ("parley.brain.core", "parley.brain.turn_stream")


@dataclass(frozen=True)
class Module:
    """One parsed ``.py`` file of the package."""

    name: str  # dotted, e.g. "parley.brain.core"
    path: Path
    lines: int
    tree: ast.Module


def load_modules(package: Path) -> list[Module]:
    """Every ``.py`` file under ``package``, named as the import system names it."""
    modules = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        modules.append(Module(".".join(parts), path, len(text.splitlines()), tree))
    return modules


def imported_names(module: Module) -> set[str]:
    """Dotted names ``module`` imports (``from a import b`` gives ``a`` and ``a.b``),
    relative imports resolved; imports under ``if TYPE_CHECKING`` count too."""
    is_package = module.path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.name.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join([*parts[:keep], *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _imports(names: set[str], target: str) -> bool:
    return any(n == target or n.startswith(target + ".") for n in names)


def long_modules(modules: list[Module]) -> list[str]:
    return [
        f"{m.path}: {m.lines} lines (max {MAX_MODULE_LINES})"
        for m in modules
        if m.lines > MAX_MODULE_LINES
    ]


def big_classes(modules: list[Module]) -> list[str]:
    found = []
    for m in modules:
        for node in ast.walk(m.tree):
            if not isinstance(node, ast.ClassDef):
                continue
            methods = sum(
                isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) for item in node.body
            )
            if methods > MAX_CLASS_METHODS:
                found.append(
                    f"{m.path}:{node.lineno}: class {node.name} has {methods} methods "
                    f"(max {MAX_CLASS_METHODS})"
                )
    return found


def testing_imports(modules: list[Module]) -> list[str]:
    return [
        f"{m.path}: production code imports {TESTING}"
        for m in modules
        if not _imports({m.name}, TESTING) and _imports(imported_names(m), TESTING)
    ]


def import_cycle(modules: list[Module]) -> list[str]:
    by_name = {m.name: m for m in modules}
    first, second = (by_name.get(name) for name in CYCLE_PAIR)
    if first is None or second is None:
        return []
    if _imports(imported_names(first), second.name) and _imports(
        imported_names(second), first.name
    ):
        return [f"{first.path} and {second.path} import each other"]
    return []


def measure(modules: list[Module]) -> list[str]:
    """Every broken rule, one line each; empty when the tree has its shape."""
    return [
        *long_modules(modules),
        *big_classes(modules),
        *testing_imports(modules),
        *import_cycle(modules),
    ]


def main(argv: list[str]) -> int:
    package = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "parley"
    if not package.is_dir():
        print(f"measure_tree: {package} is not a directory", file=sys.stderr)
        return 2
    modules = load_modules(package)
    print(
        f"measured {len(modules)} modules in {package}: modules <= {MAX_MODULE_LINES} lines, "
        f"classes <= {MAX_CLASS_METHODS} methods, no {TESTING} in production code, "
        f"no {CYCLE_PAIR[0]} <-> {CYCLE_PAIR[1]} cycle"
    )
    broken = measure(modules)
    for line in broken:
        print(f"BROKEN {line}")
    print("ok" if not broken else f"{len(broken)} rule(s) broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
