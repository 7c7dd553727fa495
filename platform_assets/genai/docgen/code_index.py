"""What the code says about itself, read from the AST (nothing is imported or run).

Every package under the product's top-level code folders is walked; each module yields its
docstring, public classes and functions (with the first line of their docstrings) and the
pipeline facts found in it: FastAPI routes (`@app.get(...)`, `app.add_api_route(...)`,
expanded over loops of module constants), Beam transforms (DoFn / PTransform subclasses,
functions returning a transform) and Beam pipeline steps (`"label" >> transform`), Kafka use.
Modules move, these facts move with them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
BEAM_BASES = ("DoFn", "PTransform")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    handler: str


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # class | function
    summary: str
    bases: tuple[str, ...] = ()


@dataclass
class ModuleDoc:
    name: str  # dotted
    path: str  # relative to the repository
    summary: str
    symbols: list[Symbol] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    transforms: list[Symbol] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    uses_kafka: bool = False
    runnable: bool = False  # has a __main__ entry

    @property
    def package(self) -> str:
        return self.name if self.path.endswith("__init__.py") else self.name.rpartition(".")[0]


def first_paragraph(text: str | None) -> str:
    if not text:
        return ""
    paragraph = text.strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level NAME = <literal> assignments."""
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return found


def _imported_constants(tree: ast.Module, root: Path) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            source = root / Path(*node.module.split("."))
            file = (
                source.with_suffix(".py")
                if source.with_suffix(".py").exists()
                else source / "__init__.py"
            )
            if not file.exists():
                continue
            constants = _constants(ast.parse(file.read_text()))
            for alias in node.names:
                if alias.name in constants:
                    found[alias.asname or alias.name] = constants[alias.name]
    return found


def _text(node: ast.AST | None, env: dict[str, str]) -> str:
    """A string literal or f-string, with loop variables from `env` filled in."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                expression = ast.unparse(value.value)
                parts.append(env.get(expression, "{" + expression + "}"))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left, env) + _text(node.right, env)
    if isinstance(node, ast.IfExp):  # `x if var == "b" else y`, with var known
        test = node.test
        if isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.Eq | ast.NotEq):
            left, right = ast.unparse(test.left), test.comparators[0]
            if left in env and isinstance(right, ast.Constant):
                holds = (env[left] == str(right.value)) == isinstance(test.ops[0], ast.Eq)
                return _text(node.body if holds else node.orelse, env)
    return ast.unparse(node) if node is not None else ""


def _loop_bindings(loop: ast.For, constants: dict[str, Any]) -> list[dict[str, str]]:
    """Values a `for` loop's target takes, when it iterates a known constant."""
    iterable = loop.iter
    items_call = isinstance(iterable, ast.Call) and _name(iterable.func) == "items"
    source = iterable.func.value if items_call else iterable  # type: ignore[union-attr]
    values = constants.get(_name(source)) if isinstance(source, ast.Name) else None
    if values is None:
        return []
    pairs = list(values.items()) if items_call and isinstance(values, dict) else list(values)
    bindings = []
    for value in pairs:
        if isinstance(loop.target, ast.Tuple) and isinstance(value, tuple):
            names = [ast.unparse(t) for t in loop.target.elts]
            bindings.append({n: str(v) for n, v in zip(names, value, strict=False)})
        else:
            bindings.append({ast.unparse(loop.target): str(value)})
    return bindings


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _route_calls(node: ast.AST, constants: dict[str, Any], env: dict[str, str]) -> list[Route]:
    routes: list[Route] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.For):
            for binding in _loop_bindings(child, constants) or [{}]:
                routes += _route_calls(child, constants, {**env, **binding})
            continue
        if isinstance(child, ast.Call) and _name(child.func) == "add_api_route" and child.args:
            methods = _keyword(child, "methods")
            verbs = ast.literal_eval(methods) if isinstance(methods, ast.List) else ["GET"]
            handler = ast.unparse(child.args[1]) if len(child.args) > 1 else ""
            for verb in verbs:
                routes.append(
                    Route(
                        verb.upper(),
                        _text(child.args[0], env),
                        _text(_keyword(child, "summary"), env),
                        handler,
                    )
                )
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in child.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and _name(decorator.func) in HTTP_METHODS
                    and decorator.args
                ):
                    routes.append(
                        Route(
                            _name(decorator.func).upper(),
                            _text(decorator.args[0], env),
                            _text(_keyword(decorator, "summary"), env),
                            child.name,
                        )
                    )
        routes += _route_calls(child, constants, env)
    return routes


def _symbols(tree: ast.Module) -> tuple[list[Symbol], list[Symbol]]:
    symbols, transforms = [], []
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name.startswith("_") and not isinstance(node, ast.ClassDef):
                continue
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            bases = tuple(_name(b) for b in node.bases) if isinstance(node, ast.ClassDef) else ()
            symbol = Symbol(node.name, kind, first_paragraph(ast.get_docstring(node)), bases)
            returns = getattr(node, "returns", None)
            if node.name.startswith("_"):
                continue
            symbols.append(symbol)
            beam_return = returns is not None and _name(returns) in ("ParDo", "PTransform")
            if any(b in BEAM_BASES for b in bases) or beam_return:
                transforms.append(symbol)
    return symbols, transforms


def _steps(tree: ast.Module) -> list[str]:
    """`"label" >> transform` applications, in the order the code applies them."""
    found = []
    for node in ast.walk(tree):
        labelled = isinstance(node, ast.BinOp) and isinstance(node.op, ast.RShift)
        if labelled and isinstance(node.left, ast.Constant | ast.JoinedStr):
            label = _text(node.left, {})
            target = node.right.func if isinstance(node.right, ast.Call) else node.right
            found.append(((node.lineno, node.col_offset), f"{label}: {ast.unparse(target)}"))
    return list(dict.fromkeys(step for _, step in sorted(found)))


def _uses(tree: ast.Module, module: str) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.startswith(module) for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(module):
            return True
    return False


def read_module(file: Path, root: Path) -> ModuleDoc:
    tree = ast.parse(file.read_text(), filename=str(file))
    relative = file.relative_to(root)
    parts = relative.with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    constants = {**_imported_constants(tree, root), **_constants(tree)}
    symbols, transforms = _symbols(tree)
    main_guard = any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body)
    return ModuleDoc(
        name=name,
        path=relative.as_posix(),
        summary=first_paragraph(ast.get_docstring(tree)),
        symbols=symbols,
        routes=sorted(set(_route_calls(tree, constants, {})), key=lambda r: (r.path, r.method)),
        transforms=transforms,
        steps=_steps(tree),
        uses_kafka=_uses(tree, "confluent_kafka"),
        runnable=main_guard or file.name == "__main__.py",
    )


def index_packages(root: Path, folders: tuple[str, ...]) -> list[ModuleDoc]:
    """Every module of every package under the given top-level folders, sorted by name."""
    modules = []
    for folder in folders:
        for file in sorted((root / folder).rglob("*.py")):
            if (file.parent / "__init__.py").exists() and "__pycache__" not in file.parts:
                modules.append(read_module(file, root))
    return sorted(modules, key=lambda m: m.name)
