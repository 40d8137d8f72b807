"""The package's shape: thin modules with one purpose each, layered without cycles.

Read from the source with ``ast`` (nothing is imported). A module is a file under ``echojepa/``; an import
edge goes to the echojepa module an ``import`` or ``from ... import`` statement names (a ``from pkg import
name`` where ``pkg.name`` is a module counts as importing that module).

Cycles are checked on every import, including those inside functions: a deferred import only hides a
cycle from the interpreter's load order, the two modules still depend on each other (the probe heads and
the multi-view heads did so through a function-level import). Imports under ``if TYPE_CHECKING:`` count
too, for the same reason.

A module may run past ``MAX_LINES`` only when its docstring says why, in a sentence holding
``LONG_MARKER`` ("long because ...").

A module holds at most one top-level banner comment (``# ----- reading -----``): a file that needs several
to be read is several modules. Banners indented inside a class group one class's methods and are not
counted.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "echojepa"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
MAX_LINES = 500
LONG_MARKER = "long because"
# A comment at column 0 carrying a run of five or more dashes, equals signs or hashes: a section divider.
BANNER = re.compile(r"^#.*[-=#]{5,}")
MAX_BANNERS = 1


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def _modules() -> dict[str, Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        out[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return out


MODULES = _modules()


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module name a ``from`` import reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@dataclass(frozen=True)
class Import:
    target: str  # the echojepa module imported
    names: tuple[str, ...]  # names taken from it (``from target import a, b``); empty for ``import target``
    line: int


def _imports(module: Module) -> Iterator[Import]:
    """Every import of an echojepa module by ``module``, at any depth of the source."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    yield Import(alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if source.split(".")[0] != PACKAGE:
                continue
            plain = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:  # ``from pkg import submodule``
                    yield Import(sub, (), node.lineno)
                else:
                    plain.append(alias.name)
            if plain:
                yield Import(source, tuple(plain), node.lineno)


def _module_aliases(module: Module) -> dict[str, str]:
    """Local names bound to an echojepa module (``import echojepa.x as m``, ``from echojepa import x``)."""
    aliases = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
    return aliases


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _private_uses(module: Module) -> Iterator[str]:
    for imp in _imports(module):
        if imp.target == module.name:
            continue
        if _is_private(imp.target.rsplit(".", 1)[-1]):
            yield f"{module.name}:{imp.line} imports private module {imp.target}"
        for name in imp.names:
            if _is_private(name):
                yield f"{module.name}:{imp.line} imports {imp.target}.{name}"
    aliases = _module_aliases(module)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _dotted(node.value)
            if owner is None:
                continue
            head, _, rest = owner.partition(".")
            target = aliases.get(head) or (head if head == PACKAGE else None)
            if target is None:
                continue
            target = f"{target}.{rest}" if rest else target
            if target in MODULES and target != module.name:
                yield f"{module.name}:{node.lineno} uses {target}.{node.attr}"


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, module in MODULES.items():
        for imp in _imports(module):
            target = imp.target
            while target not in MODULES and "." in target:  # ``import echojepa.x.y`` of a missing y
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_every_module_of_the_package_is_read():
    assert len(MODULES) > 50 and "echojepa.probe.protocols" in MODULES


def test_no_module_reaches_into_another_modules_private_names():
    offences = [line for module in MODULES.values() for line in _private_uses(module)]
    assert not offences, "private names used across modules (make them public or move them):\n" + "\n".join(
        offences
    )


def test_the_private_name_check_sees_from_imports_and_attribute_use():
    src = "from echojepa.probe import heads\nfrom echojepa.metrics import _x\nheads._y(1)\n"
    module = Module("echojepa.fake", ROOT / "fake.py", ast.parse(src))
    assert sorted(_private_uses(module)) == [
        "echojepa.fake:2 imports echojepa.metrics._x",
        "echojepa.fake:3 uses echojepa.probe.heads._y",
    ]


def test_echojepa_modules_import_each_other_without_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles among echojepa modules:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle_through_three_modules():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_probe_and_pretrain_do_not_import_each_other():
    lower, upper = "echojepa.probe", "echojepa.pretrain"
    crossing = [
        f"{src} -> {dst}"
        for src, targets in _graph().items()
        for dst in targets
        if (_in(src, lower) and _in(dst, upper)) or (_in(src, upper) and _in(dst, lower))
    ]
    assert not crossing, "\n".join(sorted(crossing))


def test_a_module_over_500_lines_says_in_its_docstring_why_it_is_long():
    too_long = []
    for module in MODULES.values():
        lines = len(module.path.read_text(encoding="utf-8").splitlines())
        doc = ast.get_docstring(module.tree) or ""
        if lines > MAX_LINES and LONG_MARKER not in " ".join(doc.split()).lower():
            too_long.append(f"{module.path.relative_to(ROOT.parent)}: {lines} lines")
    assert not too_long, (
        f"modules over {MAX_LINES} lines without '{LONG_MARKER}' in their docstring (split them, or say "
        "why one concern needs the length):\n" + "\n".join(too_long)
    )


# Entry points every command module defines by convention; they are reached through their module path.
ENTRY_POINT_NAMES = {"main", "app"}


def _public_definitions(modules: dict[str, Module]) -> dict[str, list[str]]:
    """Top-level public function and class name -> the modules that define it."""
    where: dict[str, list[str]] = {}
    for module in modules.values():
        for node in module.tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not _is_private(node.name):
                where.setdefault(node.name, []).append(module.name)
    return where


def test_each_public_name_has_one_meaning_package_wide():
    twice = {
        name: mods
        for name, mods in _public_definitions(MODULES).items()
        if len(mods) > 1 and name not in ENTRY_POINT_NAMES
    }
    assert not twice, f"public names defined in more than one module: {twice}"


def test_the_name_check_sees_a_class_defined_in_two_modules():
    tree = ast.parse("class Study:\n    pass\n")
    planted = {n: Module(n, Path(f"{n}.py"), tree) for n in ("echojepa.a", "echojepa.b")}
    assert _public_definitions(planted)["Study"] == ["echojepa.a", "echojepa.b"]


def _banners(source: str) -> list[int]:
    """Line numbers of the top-level banner comments in ``source``."""
    return [i for i, line in enumerate(source.splitlines(), start=1) if BANNER.match(line)]


def test_a_module_has_at_most_one_top_level_banner_comment():
    sectioned = []
    for module in MODULES.values():
        lines = _banners(module.path.read_text(encoding="utf-8"))
        if len(lines) > MAX_BANNERS:
            sectioned.append(f"{module.path.relative_to(ROOT.parent)}: banners at lines {lines}")
    assert not sectioned, (
        "modules divided into sections by banner comments (split each section into its own module):\n"
        + "\n".join(sectioned)
    )


def test_the_banner_check_counts_top_level_dividers_and_not_class_sections():
    src = (
        "# ----- reading ------------\n"
        "def read(): ...\n"
        "class A:\n"
        "    # ----- hooks -----\n"
        "    def f(self): ...\n"
        "# ===================== writing\n"
        "x = 1  # a - b -- c\n"
    )
    assert _banners(src) == [1, 6]
