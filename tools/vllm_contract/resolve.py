"""Read a vLLM release's API from its Python sources, without importing it.

`Release` answers the questions the contract asks, by AST over the release's files:
where a name imported from a module is really defined (following re-exports, aliases and
vLLM's lazy `MODULE_ATTRS` / module `__getattr__` exports, but not imports made only under
`TYPE_CHECKING`), which keywords a class's constructor or a method accepts (dataclass,
pydantic-dataclass, msgspec and TypedDict fields; `__init__` parameters; `**kwargs` followed
where `__init__` forwards them), which attributes instances carry, and what type an
annotation means once vLLM's type aliases are expanded.

Hand-written rather than a type checker (mypy/pyright would need vLLM's dependencies, torch
included, to resolve anything): the questions are few and the answers must name the file and
line they came from.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

BUILTINS = {
    "int", "str", "float", "bool", "bytes", "list", "dict", "tuple", "set", "frozenset",
    "object", "type", "complex",
}  # fmt: skip
TYPING_RENAMES = {
    "List": "list",
    "Dict": "dict",
    "Tuple": "tuple",
    "Set": "set",
    "FrozenSet": "frozenset",
    "Type": "type",
}
ABC_NAMES = {"Sequence", "Mapping", "Iterable", "Callable", "Iterator", "MutableSequence"}
TRANSPARENT = {"Annotated", "NotRequired", "Required", "ReadOnly", "Final", "ClassVar"}
DATACLASS_LIKE_BASES = {
    "msgspec:Struct",
    "typing:TypedDict",
    "typing_extensions:TypedDict",
    "typing:NamedTuple",
    "pydantic:BaseModel",
}


class Files(Protocol):
    """What the resolver reads: a release's files by wheel path (`vllm/outputs.py`)."""

    def read(self, path: str) -> str | None: ...


@dataclass
class DirFiles:
    """A plain folder of sources (a cache folder, or a synthetic tree in a test)."""

    root: Path

    def read(self, path: str) -> str | None:
        file = self.root / path
        return file.read_text(encoding="utf-8") if file.is_file() else None


# Canonical types are hashable tuples:
#   ("name", "int" | "module:Name")  ("generic", base, (args...))  ("union", frozenset)
#   ("literal", value)  ("none",)  ("any",)  ("typevar", name)  ("unknown", text)
Type = tuple
NONE: Type = ("none",)
ANY: Type = ("any",)


def union(members: list[Type]) -> Type:
    flat: set[Type] = set()
    for member in members:
        if member[0] == "union":
            flat |= member[1]
        else:
            flat.add(member)
    return next(iter(flat)) if len(flat) == 1 else ("union", frozenset(flat))


def members(t: Type) -> frozenset[Type]:
    return t[1] if t[0] == "union" else frozenset([t])


def admits(actual: Type, expected: Type) -> bool:
    """The release's type accepts (or can produce) every member of what hotncold assumes."""
    have = members(actual)
    if ANY in have:
        return True
    return all(member in have for member in members(expected))


def show(t: Type) -> str:
    kind = t[0]
    if kind == "name":
        return t[1].split(":")[-1]
    if kind == "generic":
        return f"{show(('name', t[1]))}[{', '.join(show(a) for a in t[2])}]"
    if kind == "union":
        literals = sorted(repr(m[1]) for m in t[1] if m[0] == "literal")
        rest = sorted(show(m) for m in t[1] if m[0] not in ("literal", "none"))
        parts = ([f"Literal[{', '.join(literals)}]"] if literals else []) + rest
        return " | ".join(parts + (["None"] if NONE in t[1] else []))
    if kind == "literal":
        return f"Literal[{t[1]!r}]"
    if kind == "none":
        return "None"
    if kind == "any":
        return "Any"
    return f"<{t[1]}>"


@dataclass
class Binding:
    kind: str  # class, function, assign, from, import
    node: ast.AST | None = None
    target: str = ""  # "module:name" for from-imports, "module" for imports
    annotation: ast.expr | None = None
    type_checking: bool = False


@dataclass
class Module:
    name: str
    path: str
    tree: ast.Module
    bindings: dict[str, Binding] = field(default_factory=dict)
    type_only: dict[str, Binding] = field(default_factory=dict)
    lazy: dict[str, str] = field(default_factory=dict)
    """Names a module-level `__getattr__` provides: name -> "module:attr" ("" if computed)."""

    @property
    def package(self) -> str:
        return self.name if self.path.endswith("__init__.py") else self.name.rpartition(".")[0]


@dataclass
class Definition:
    """Where a name is defined: a class, a function, a value (alias), a module, or lazy."""

    kind: str
    module: str
    name: str
    node: ast.AST | Binding | None = None
    """The class or function node; for kind "value" the module-level Binding."""
    line: int = 0
    path: str = ""

    @property
    def key(self) -> str:
        return f"{self.module}:{self.name}" if self.name else self.module

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass
class Param:
    name: str
    annotation: ast.expr | None
    module: str
    where: str


@dataclass
class Signature:
    """A callable's parameters; `forwards` lists where `**kwargs` goes (if anywhere)."""

    where: str
    positional: list[Param]
    keywords: dict[str, Param]
    star_args: bool
    star_kwargs: str | None
    forwards: list[Definition]
    returns: ast.expr | None
    module: str


@dataclass
class Attribute:
    name: str
    where: str
    module: str
    annotation: ast.expr | None = None
    value: ast.expr | None = None
    owner: Definition | None = None
    params: dict[str, ast.expr | None] = field(default_factory=dict)
    kind: str = "attribute"  # attribute, property, method


def _is_type_checking(test: ast.expr) -> bool:
    name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", "")
    return name == "TYPE_CHECKING"


class Release:
    """One release's sources; `label` names it in messages."""

    def __init__(self, files: Files, label: str = "") -> None:
        self.files = files
        self.label = label
        self._modules: dict[str, Module | None] = {}

    # Modules and names

    def module(self, name: str) -> Module | None:
        if name not in self._modules:
            self._modules[name] = self._load(name)
        return self._modules[name]

    def _load(self, name: str) -> Module | None:
        base = name.replace(".", "/")
        for path in (f"{base}.py", f"{base}/__init__.py"):
            text = self.files.read(path)
            if text is not None:
                module = Module(name, path, ast.parse(text, filename=path))
                self._scan(module, module.tree.body, type_checking=False)
                self._scan_lazy(module)
                return module
        return None

    def _scan(self, module: Module, body: list[ast.stmt], type_checking: bool) -> None:
        for node in body:
            if isinstance(node, ast.If):
                inner = type_checking or _is_type_checking(node.test)
                self._scan(module, node.body, inner)
                self._scan(module, node.orelse, type_checking)
                continue
            if isinstance(node, ast.Try):
                for part in (node.body, *(h.body for h in node.handlers), node.orelse):
                    self._scan(module, part, type_checking)
                continue
            for name, binding in self._bindings_of(module, node):
                binding.type_checking = type_checking
                (module.type_only if type_checking else module.bindings)[name] = binding

    def _bindings_of(self, module: Module, node: ast.stmt) -> Iterator[tuple[str, Binding]]:
        if isinstance(node, ast.ClassDef):
            yield node.name, Binding("class", node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, Binding("function", node)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, Binding("assign", node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id, Binding("assign", node.value, annotation=node.annotation)
        elif isinstance(node, ast.ImportFrom):
            source = self._absolute(module, node.module, node.level)
            for alias in node.names:
                if alias.name != "*":
                    yield (
                        alias.asname or alias.name,
                        Binding("from", node, f"{source}:{alias.name}"),
                    )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    yield alias.asname, Binding("import", node, alias.name)
                else:
                    top = alias.name.split(".")[0]
                    yield top, Binding("import", node, top)

    @staticmethod
    def _absolute(module: Module, name: str | None, level: int) -> str:
        if not level:
            return name or ""
        base = module.package
        for _ in range(level - 1):
            base = base.rpartition(".")[0]
        return f"{base}.{name}" if name else base

    def _scan_lazy(self, module: Module) -> None:
        """vLLM's lazy exports: `MODULE_ATTRS = {"LLM": ".entrypoints.llm:LLM"}` read by a
        module `__getattr__`, or a `__getattr__` that compares `name` with string constants."""
        getattr_fn = module.bindings.get("__getattr__")
        if getattr_fn is None or getattr_fn.kind != "function":
            return
        fn = getattr_fn.node
        used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
        for table, binding in module.bindings.items():
            if table in used and binding.kind == "assign" and isinstance(binding.node, ast.Dict):
                for key, value in zip(binding.node.keys, binding.node.values):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                        target, _, attr = str(value.value).partition(":")
                        if target.startswith("."):
                            dots = len(target) - len(target.lstrip("."))
                            target = self._absolute(module, target.lstrip("."), dots)
                        module.lazy[str(key.value)] = f"{target}:{attr}"
        for node in ast.walk(fn):
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name):
                for comparator in node.comparators:
                    for const in ast.walk(comparator):
                        if isinstance(const, ast.Constant) and isinstance(const.value, str):
                            module.lazy.setdefault(const.value, "")

    def lookup(
        self, module_name: str, name: str, _seen: frozenset = frozenset()
    ) -> Definition | None:
        """What `from module_name import name` gives at run time, or None."""
        if (module_name, name) in _seen:
            return None
        seen = _seen | {(module_name, name)}
        module = self.module(module_name)
        if module is None:
            return None
        binding = module.bindings.get(name)
        if binding is not None:
            return self._follow(module, name, binding, seen)
        if name in module.lazy:
            target = module.lazy[name]
            if target:
                target_module, _, attr = target.partition(":")
                found = self.lookup(target_module, attr, seen)
                if found is not None:
                    return found
            return Definition(
                "lazy", module.name, name, None, self._line(module, "__getattr__"), module.path
            )
        sub = self.module(f"{module_name}.{name}")
        if sub is not None:
            return Definition("module", sub.name, "", None, 1, sub.path)
        return None

    def _line(self, module: Module, name: str) -> int:
        binding = module.bindings.get(name)
        return getattr(binding.node, "lineno", 0) if binding else 0

    def _follow(
        self, module: Module, name: str, binding: Binding, seen: frozenset
    ) -> Definition | None:
        line = getattr(binding.node, "lineno", 0)
        if binding.kind in ("class", "function"):
            return Definition(binding.kind, module.name, name, binding.node, line, module.path)
        if binding.kind == "from":
            source, _, attr = binding.target.partition(":")
            found = self.lookup(source, attr, seen)
            if found is None and self.module(f"{source}.{attr}") is not None:
                sub = self.module(f"{source}.{attr}")
                return Definition("module", sub.name, "", None, 1, sub.path)
            return found
        if binding.kind == "import":
            sub = self.module(binding.target)
            if sub is None:
                return Definition("external", binding.target, "", None, line, module.path)
            return Definition("module", sub.name, "", None, 1, sub.path)
        value = binding.node
        if isinstance(value, ast.Name | ast.Attribute):
            target = self.resolve_dotted(module, value, seen)
            if target is not None and target.kind in ("class", "function", "module"):
                return target
        return Definition("value", module.name, name, binding, line, module.path)

    def resolve_dotted(
        self, module: Module, expr: ast.expr, seen: frozenset = frozenset()
    ) -> Definition | None:
        """A Name or dotted Attribute in `module`'s namespace; external names come back as
        kind "external" with key "package.module:Name"."""
        parts: list[str] = []
        node = expr
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(node.id)
        parts.reverse()
        head = parts[0]
        binding = module.bindings.get(head) or module.type_only.get(head)
        if binding is None:
            if len(parts) == 1 and head in BUILTINS:
                return Definition("builtin", "builtins", head)
            return None
        if binding.kind == "from" and not binding.target.startswith("vllm"):
            source, _, attr = binding.target.partition(":")
            if len(parts) == 1:
                return Definition("external", source, attr)
            return Definition("external", f"{source}.{attr}", parts[-1])
        if binding.kind == "import" and not binding.target.startswith("vllm"):
            return Definition("external", ".".join([binding.target, *parts[1:-1]]), parts[-1])
        found = self._follow(module, head, binding, seen)
        for part in parts[1:]:
            if found is None:
                return None
            if found.kind == "module":
                found = self.lookup(found.module, part, seen)
            elif found.kind == "class":
                member = self.class_member(found, part)
                found = member.owner if member is not None and member.kind == "class" else None
            else:
                return None
        return found

    # Classes

    def bases(self, cls: Definition) -> list[Definition]:
        module = self.module(cls.module)
        out = []
        for base in cls.node.bases:
            target = base.value if isinstance(base, ast.Subscript) else base
            found = self.resolve_dotted(module, target)
            if found is not None:
                out.append(found)
        return out

    def mro(self, cls: Definition) -> list[Definition]:
        """The class and its bases, depth first, each once (enough for single-path lookups)."""
        order: list[Definition] = []
        stack = [cls]
        while stack:
            current = stack.pop(0)
            if any(c.key == current.key for c in order):
                continue
            order.append(current)
            if current.kind == "class":
                stack[0:0] = self.bases(current)
        return order

    def dataclass_like(self, cls: Definition) -> bool:
        module = self.module(cls.module)
        for decorator in cls.node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name.endswith("dataclass"):
                return True
            found = self.resolve_dotted(module, target)
            if found is not None and found.kind == "function":
                marks = [ast.unparse(d) for d in found.node.decorator_list]
                if any("dataclass_transform" in m for m in marks):
                    return True
        # TypedDict, msgspec.Struct, pydantic models: fields by inheritance, at any depth.
        return any(c.key in DATACLASS_LIKE_BASES for c in self.mro(cls))

    def fields(self, cls: Definition) -> dict[str, Attribute]:
        """Constructor fields of a dataclass-like class and its dataclass-like bases."""
        out: dict[str, Attribute] = {}
        for current in reversed(self.mro(cls)):
            if current.kind != "class" or not self.dataclass_like(current):
                continue
            for node in current.node.body:
                if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                    continue
                text = ast.unparse(node.annotation)
                if text.startswith(
                    ("ClassVar", "typing.ClassVar", "KW_ONLY", "dataclasses.KW_ONLY")
                ):
                    continue
                if isinstance(node.value, ast.Call) and any(
                    k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
                    for k in node.value.keywords
                ):
                    continue
                out[node.target.id] = Attribute(
                    node.target.id,
                    f"{current.path}:{node.lineno}",
                    current.module,
                    annotation=node.annotation,
                    owner=current,
                )
        return out

    def class_member(self, cls: Definition, name: str) -> Attribute | None:
        """A method, property, class attribute or instance attribute (`self.x = ...`)."""
        for current in self.mro(cls):
            if current.kind != "class":
                continue
            found = self._own_member(current, name)
            if found is not None:
                return found
        return None

    def _own_member(self, cls: Definition, name: str) -> Attribute | None:
        body = cls.node.body
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                marks = {ast.unparse(d).split(".")[-1] for d in node.decorator_list}
                kind = "property" if marks & {"property", "cached_property"} else "method"
                return Attribute(
                    name,
                    f"{cls.path}:{node.lineno}",
                    cls.module,
                    node.returns,
                    None,
                    cls,
                    kind=kind,
                )
            if isinstance(node, ast.ClassDef) and node.name == name:
                inner = Definition(
                    "class", cls.module, f"{cls.name}.{name}", node, node.lineno, cls.path
                )
                return Attribute(
                    name, f"{cls.path}:{node.lineno}", cls.module, owner=inner, kind="class"
                )
            if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name:
                return Attribute(
                    name, f"{cls.path}:{node.lineno}", cls.module, node.annotation, node.value, cls
                )
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == name for t in node.targets
            ):
                return Attribute(
                    name, f"{cls.path}:{node.lineno}", cls.module, None, node.value, cls
                )
        for node in body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            params = {
                a.arg: a.annotation
                for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)
            }
            for sub in ast.walk(node):
                target, annotation, value = None, None, None
                if isinstance(sub, ast.Assign):
                    value = sub.value
                    for t in sub.targets:
                        if _is_self_attr(t, name):
                            target = t
                elif isinstance(sub, ast.AnnAssign) and _is_self_attr(sub.target, name):
                    target, annotation, value = sub.target, sub.annotation, sub.value
                if target is not None:
                    return Attribute(
                        name, f"{cls.path}:{sub.lineno}", cls.module, annotation, value, cls, params
                    )
        return None

    def signature(self, fn: Definition | Attribute) -> Signature:
        skip_self = isinstance(fn, Attribute)  # a method; module-level functions keep arg 0
        if isinstance(fn, Attribute):
            node, module_name, where = self._function_node(fn), fn.module, fn.where
        else:
            node, module_name, where = fn.node, fn.module, fn.where
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        marks = {ast.unparse(d).split(".")[-1] for d in node.decorator_list}
        if skip_self and positional and "staticmethod" not in marks:
            positional = positional[1:]
        keywords = {
            a.arg: Param(a.arg, a.annotation, module_name, where)
            for a in (*args.args, *args.kwonlyargs)
        }
        keywords.pop("self", None)
        keywords.pop("cls", None)
        forwards: list[Definition] = []
        if args.kwarg is not None:
            module = self.module(module_name)
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and any(
                    k.arg is None and getattr(k.value, "id", None) == args.kwarg.arg
                    for k in call.keywords
                ):
                    target = self.resolve_dotted(module, call.func)
                    if target is not None and target.kind in ("class", "function"):
                        forwards.append(target)
        return Signature(
            where=where,
            positional=[Param(a.arg, a.annotation, module_name, where) for a in positional],
            keywords=keywords,
            star_args=args.vararg is not None,
            star_kwargs=args.kwarg.arg if args.kwarg else None,
            forwards=forwards,
            returns=node.returns,
            module=module_name,
        )

    def _function_node(self, attr: Attribute) -> ast.FunctionDef:
        for node in attr.owner.node.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == attr.name:
                return node
        raise LookupError(attr.name)

    def constructor(self, cls: Definition) -> tuple[str, dict[str, Param], Signature | None]:
        """How a class is called: ("fields", fields) for dataclass-likes, or its `__init__`."""
        for current in self.mro(cls):
            if current.kind != "class":
                continue
            own_init = self._own_member(current, "__init__")
            if own_init is not None and own_init.kind == "method":
                sig = self.signature(own_init)
                return "__init__", sig.keywords, sig
            if self.dataclass_like(current):
                fields = self.fields(current)
                params = {n: Param(n, a.annotation, a.module, a.where) for n, a in fields.items()}
                return "fields", params, None
        return "object", {}, None

    def accepts(
        self, target: Definition | Attribute, keyword: str, _depth: int = 0
    ) -> Param | None:
        """The parameter that takes `keyword` when calling `target`, following **kwargs."""
        if isinstance(target, Definition) and target.kind == "class":
            _, params, sig = self.constructor(target)
            if keyword in params:
                return params[keyword]
        else:
            sig = self.signature(target)
            if keyword in sig.keywords:
                return sig.keywords[keyword]
        if sig is not None and _depth < 4:
            for forward in sig.forwards:
                found = self.accepts(forward, keyword, _depth + 1)
                if found is not None:
                    return found
        return None

    # Types

    def canon(self, expr: ast.expr | None, module_name: str, _depth: int = 0) -> Type:
        """A canonical type for an annotation written in `module_name`."""
        if expr is None:
            return ("unknown", "no annotation")
        if _depth > 12:
            return ("unknown", ast.unparse(expr))
        module = self.module(module_name)
        again = lambda e: self.canon(e, module_name, _depth + 1)  # noqa: E731
        if isinstance(expr, ast.Constant):
            if expr.value is None:
                return NONE
            if isinstance(expr.value, str):
                try:
                    return again(ast.parse(expr.value, mode="eval").body)
                except SyntaxError:
                    return ("unknown", expr.value)
            return ("unknown", repr(expr.value))
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
            return union([again(expr.left), again(expr.right)])
        if isinstance(expr, ast.Subscript):
            base = self._type_name(expr.value, module)
            args = list(expr.slice.elts) if isinstance(expr.slice, ast.Tuple) else [expr.slice]
            tail = base.rpartition(":")[2]
            if tail == "Optional":
                return union([again(args[0]), NONE])
            if tail == "Union":
                return union([again(a) for a in args])
            if tail == "Literal":
                # Literal["auto", RunnerType] nests another Literal alias: expand it.
                return union(
                    [
                        ("literal", a.value) if isinstance(a, ast.Constant) else again(a)
                        for a in args
                    ]
                )
            if tail in TRANSPARENT:
                return again(args[0])
            expanded = self._alias(expr.value, module, _depth)
            if expanded is not None and expanded[0] == "generic":
                base = expanded[1]
            return ("generic", base, tuple(again(a) for a in args))
        if isinstance(expr, ast.Name | ast.Attribute):
            expanded = self._alias(expr, module, _depth)
            if expanded is not None:
                return expanded
            return ("name", self._type_name(expr, module))
        return ("unknown", ast.unparse(expr))

    def _type_name(self, expr: ast.expr, module: Module | None) -> str:
        text = ast.unparse(expr)
        if module is None:
            return text
        found = self.resolve_dotted(module, expr)
        if found is None:
            tail = text.rpartition(".")[2]
            return (
                TYPING_RENAMES.get(tail, tail)
                if tail in TYPING_RENAMES or tail in BUILTINS
                else text
            )
        if found.kind == "builtin":
            return found.name
        if found.kind == "external":
            tail = found.name
            if found.module in ("typing", "typing_extensions", "collections.abc"):
                if tail in TYPING_RENAMES:
                    return TYPING_RENAMES[tail]
                if tail in ABC_NAMES:
                    return tail
                return f"typing:{tail}"
            return f"{found.module}:{tail}"
        return found.key

    def _alias(self, expr: ast.expr, module: Module | None, depth: int) -> Type | None:
        """Expand a module-level type alias or TypeVar (to its default or bound)."""
        if module is None:
            return None
        found = self.resolve_dotted(module, expr)
        if found is None:
            return None
        if found.kind == "external" and found.module in ("typing", "typing_extensions"):
            if found.name == "Any":
                return ANY
            return None
        if found.kind != "value":
            return None
        binding: Binding = found.node
        value = binding.node
        if value is None:
            return None
        if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("TypeVar"):
            for key in ("default", "bound"):
                for keyword in value.keywords:
                    if keyword.arg == key:
                        return self.canon(keyword.value, found.module, depth + 1)
            return ("typevar", found.name)
        if isinstance(value, ast.Subscript | ast.BinOp | ast.Name | ast.Attribute) or (
            isinstance(value, ast.Constant) and isinstance(value.value, str)
        ):
            return self.canon(value, found.module, depth + 1)
        return None

    def attribute_type(self, attr: Attribute) -> Type:
        """The declared or inferable type of an attribute, property or method result."""
        if attr.kind in ("property", "method"):
            return self.canon(attr.annotation, attr.module)
        if attr.annotation is not None:
            return self.canon(attr.annotation, attr.module)
        value = attr.value
        if isinstance(value, ast.Name) and value.id in attr.params:
            return self.canon(attr.params[value.id], attr.module)
        if isinstance(value, ast.Call):
            module = self.module(attr.module)
            callee = self.resolve_dotted(module, value.func)
            if callee is not None and callee.kind == "class":
                return ("name", callee.key)
            if isinstance(value.func, ast.Attribute):
                owner = self.resolve_dotted(module, value.func.value)
                if owner is not None and owner.kind == "class":
                    method = self.class_member(owner, value.func.attr)
                    if method is not None and method.kind == "method":
                        returns = method.annotation
                        if returns is not None and ast.unparse(returns).strip("'\"") in (
                            "Self",
                            owner.name,
                        ):
                            return ("name", owner.key)
                        return self.canon(returns, method.module)
        return ("unknown", ast.unparse(value) if value is not None else "no value")


def _is_self_attr(node: ast.expr, name: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == name
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )
