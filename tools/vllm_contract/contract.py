"""The declared contract (contract.toml) and its check against one release's sources."""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tools.vllm_contract.resolve import (
    ANY,
    BUILTINS,
    NONE,
    Definition,
    Release,
    Type,
    admits,
    show,
    union,
)
from tools.vllm_contract.sources import FetchError

CONTRACT = Path(__file__).with_name("contract.toml")
KINDS = ("import", "keyword", "method", "attribute", "behaviour")


@dataclass(frozen=True)
class Entry:
    kind: str
    of: str  # class alias, "Class.method", a module:name (imports) or a qualified name
    name: str  # keyword, method, attribute; "" for imports and behaviours
    reason: str
    type: str | None = None
    positional: int | None = None
    reads: str | None = None
    contains: str | None = None
    expect: str = "class"  # imports: class, function, module, any

    @property
    def label(self) -> str:
        if self.kind == "import":
            module, _, name = self.of.partition(":")
            return f"from {module} import {name}"
        if self.kind == "keyword":
            return f"{self.of}({self.name}=...)"
        if self.kind == "method":
            return f"{self.of}.{self.name}()"
        if self.kind == "attribute":
            return f"{self.of}.{self.name}"
        what = f"reads .{self.reads}" if self.reads else f"contains `{self.contains}`"
        return f"{self.of} {what}"

    @property
    def use(self) -> tuple[str, ...]:
        """The key the code-side scan reports for this use."""
        if self.kind == "import":
            return ("import", self.of)
        return (self.kind, self.of, self.name)


@dataclass
class Contract:
    classes: dict[str, str]
    entries: list[Entry]
    path: Path = CONTRACT

    def find(self, kind: str, of: str, name: str = "") -> Entry | None:
        for entry in self.entries:
            if entry.kind == kind and entry.of == of and entry.name == name:
                return entry
        return None


class ContractError(ValueError):
    """The contract file itself is malformed."""


def load(path: Path = CONTRACT) -> Contract:
    data = tomllib.loads(path.read_text())
    classes = dict(data.get("classes", {}))
    entries: list[Entry] = []
    unknown = set(data) - {"classes", *KINDS}
    if unknown:
        raise ContractError(f"{path}: unknown sections {sorted(unknown)}")
    for kind in KINDS:
        for raw in data.get(kind, []):
            raw = dict(raw)
            reason = raw.pop("reason", "").strip()
            if not reason:
                raise ContractError(f"{path}: a [[{kind}]] entry has no reason: {raw}")
            if kind == "import":
                entry = Entry(
                    kind,
                    raw.pop("name"),
                    "",
                    reason,
                    raw.pop("type", None),
                    expect=raw.pop("kind", "class"),
                )
            elif kind == "behaviour":
                entry = Entry(
                    kind,
                    raw.pop("in"),
                    "",
                    reason,
                    reads=raw.pop("reads", None),
                    contains=raw.pop("contains", None),
                )
                if (entry.reads is None) == (entry.contains is None):
                    raise ContractError(f"{path}: behaviour {entry.of} needs one of reads/contains")
            else:
                of = raw.pop("of")
                if of.split(".")[0] not in classes:
                    raise ContractError(f"{path}: {kind} of {of!r}: not a class in [classes]")
                entry = Entry(
                    kind,
                    of,
                    raw.pop("name"),
                    reason,
                    raw.pop("type", None) or raw.pop("returns", None),
                    positional=raw.pop("positional", None),
                )
            if raw:
                raise ContractError(f"{path}: {kind} {entry.label}: unknown keys {sorted(raw)}")
            entries.append(entry)
    seen: set[tuple[str, ...]] = set()
    for entry in entries:
        key = entry.use + (
            (entry.reads or entry.contains or "",) if entry.kind == "behaviour" else ()
        )
        if key in seen:
            raise ContractError(f"{path}: {entry.label} is listed twice")
        seen.add(key)
    return Contract(classes, entries, path)


@dataclass
class Result:
    entry: Entry | None
    ok: bool
    message: str
    label: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.label or self.entry.label}: {self.message}"


@dataclass
class Report:
    version: str
    results: list[Result] = field(default_factory=list)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failures


class Checker:
    """Checks a contract against one release."""

    def __init__(self, contract: Contract, release: Release) -> None:
        self.contract = contract
        self.release = release
        self._classes: dict[str, Definition | None] = {}

    def run(self, version: str = "") -> Report:
        report = Report(version or self.release.label)
        for alias, target in self.contract.classes.items():
            found = self.cls(alias)
            if found is None:
                report.results.append(
                    Result(None, False, f"no class {target} in this release", f"class {alias}")
                )
            else:
                report.results.append(
                    Result(None, True, f"{found.key} ({found.where})", f"class {alias}")
                )
        for entry in self.contract.entries:
            try:
                report.results.append(getattr(self, f"check_{entry.kind}")(entry))
            except FetchError:
                raise  # missing sources are not a contract failure
            except Exception as error:  # a check must report, never crash the run
                report.results.append(Result(entry, False, f"checker error: {error!r}"))
        return report

    # Names

    def cls(self, alias: str) -> Definition | None:
        if alias not in self._classes:
            module, _, name = self.contract.classes[alias].partition(":")
            found = self.release.lookup(module, name)
            self._classes[alias] = found if found is not None and found.kind == "class" else None
        return self._classes[alias]

    def expected(self, text: str) -> Type:
        """A contract type string, its class names resolved in this release."""
        return self._expected(ast.parse(text, mode="eval").body)

    def _expected(self, node: ast.expr) -> Type:
        if isinstance(node, ast.Constant) and node.value is None:
            return NONE
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return union([self._expected(node.left), self._expected(node.right)])
        if isinstance(node, ast.Subscript):
            base = ast.unparse(node.value)
            args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
            if base == "Literal":
                return union([("literal", a.value) for a in args])
            return ("generic", base, tuple(self._expected(a) for a in args))
        text = ast.unparse(node)
        if text == "Any":
            return ANY
        if text in BUILTINS or text in ("Sequence", "Mapping", "Iterable", "Callable"):
            return ("name", text)
        if text in self.contract.classes:
            found = self.cls(text)
            return ("name", found.key if found else f"missing:{text}")
        if "." in text:
            module, _, name = text.rpartition(".")
            return ("name", f"{module}:{name}")
        raise ContractError(f"unknown name {text!r} in a contract type")

    def target(self, of: str) -> tuple[Definition | None, str]:
        """A class alias or "Class.method" -> (definition or member, description of failure)."""
        alias, _, method = of.partition(".")
        cls = self.cls(alias)
        if cls is None:
            return None, f"no class {self.contract.classes[alias]}"
        if not method:
            return cls, ""
        member = self.release.class_member(cls, method)
        if member is None or member.kind != "method":
            return None, f"{alias} has no method {method} ({cls.where})"
        return member, ""

    # Checks

    def check_import(self, entry: Entry) -> Result:
        module, _, name = entry.of.partition(":")
        found = self.release.lookup(module, name)
        if found is None:
            where = self.release.module(module)
            detail = (
                f"{where.path} defines or re-exports no {name}" if where else f"no module {module}"
            )
            return Result(entry, False, detail)
        if entry.expect != "any" and found.kind != entry.expect:
            return Result(
                entry, False, f"{found.key} is a {found.kind}, not a {entry.expect} ({found.where})"
            )
        how = "provided lazily by the module's __getattr__" if found.kind == "lazy" else found.key
        return Result(entry, True, f"{how} ({found.where})")

    def check_keyword(self, entry: Entry) -> Result:
        target, why = self.target(entry.of)
        if target is None:
            return Result(entry, False, why)
        param = self.release.accepts(target, entry.name)
        if param is None:
            return Result(entry, False, f"not accepted: {self._describe_callable(target)}")
        return self._typed(entry, self.release.canon(param.annotation, param.module), param.where)

    def _describe_callable(self, target: Definition) -> str:
        if isinstance(target, Definition) and target.kind == "class":
            how, _, sig = self.release.constructor(target)
            if how == "fields":
                return f"{target.name} has no such field ({target.where})"
            forwards = ", ".join(f.name for f in sig.forwards) if sig and sig.forwards else ""
            extra = f"; **kwargs go to {forwards}" if forwards else ""
            where = sig.where if sig else target.where
            return f"no such parameter of {target.name}.__init__ ({where}){extra}"
        sig = self.release.signature(target)
        forwards = ", ".join(f.name for f in sig.forwards)
        extra = f"; **kwargs go to {forwards}" if forwards else ""
        return f"no such parameter of {target.name}() ({sig.where}){extra}"

    def _typed(self, entry: Entry, actual: Type, where: str) -> Result:
        if entry.type is None:
            return Result(entry, True, f"at {where}")
        expected = self.expected(entry.type)
        if actual[0] == "unknown":
            return Result(entry, False, f"cannot tell its type ({actual[1]}) at {where}")
        if not admits(actual, expected):
            return Result(
                entry, False, f"is {show(actual)}, hotncold assumes {show(expected)} ({where})"
            )
        return Result(entry, True, f"{show(actual)} ({where})")

    def check_method(self, entry: Entry) -> Result:
        cls = self.cls(entry.of)
        if cls is None:
            return Result(entry, False, f"no class {self.contract.classes[entry.of]}")
        member = self.release.class_member(cls, entry.name)
        if member is None or member.kind != "method":
            found = (
                f"it is a {member.kind} at {member.where}"
                if member
                else f"not defined ({cls.where})"
            )
            return Result(entry, False, f"no method {entry.name}: {found}")
        if entry.positional is not None:
            sig = self.release.signature(member)
            if len(sig.positional) < entry.positional and not sig.star_args:
                names = ", ".join(p.name for p in sig.positional)
                return Result(
                    entry,
                    False,
                    f"takes {len(sig.positional)} positional ({names}), "
                    f"hotncold passes {entry.positional} ({member.where})",
                )
        if entry.type is None:
            return Result(entry, True, f"at {member.where}")
        return self._typed(
            entry, self.release.canon(member.annotation, member.module), member.where
        )

    def check_attribute(self, entry: Entry) -> Result:
        cls = self.cls(entry.of)
        if cls is None:
            return Result(entry, False, f"no class {self.contract.classes[entry.of]}")
        member = self.release.class_member(cls, entry.name)
        if member is None:
            return Result(entry, False, f"{entry.of} sets no attribute {entry.name} ({cls.where})")
        if member.kind == "method":
            return Result(
                entry, False, f"{entry.name} is a method, not an attribute ({member.where})"
            )
        return self._typed(entry, self.release.attribute_type(member), member.where)

    def check_behaviour(self, entry: Entry) -> Result:
        node, where = self._code(entry.of)
        if node is None:
            return Result(entry, False, where)
        if entry.reads is not None:
            hit = next(
                (
                    n
                    for n in ast.walk(node)
                    if isinstance(n, ast.Attribute) and n.attr == entry.reads
                ),
                None,
            )
            if hit is None:
                return Result(entry, False, f"reads no .{entry.reads} ({where})")
            return Result(entry, True, f"line {hit.lineno} ({where})")
        pattern = ast.parse(entry.contains).body[0]
        pattern = pattern.value if isinstance(pattern, ast.Expr) else pattern
        dump = ast.dump(pattern)
        hit = next((n for n in ast.walk(node) if ast.dump(n) == dump), None)
        if hit is None:
            return Result(entry, False, f"no `{entry.contains}` in it ({where})")
        return Result(entry, True, f"line {hit.lineno} ({where})")

    def _code(self, qualified: str) -> tuple[ast.AST | None, str]:
        module, _, dotted = qualified.partition(":")
        head, *rest = dotted.split(".")
        found = self.release.lookup(module, head)
        if found is None or found.kind not in ("class", "function"):
            return None, f"{module} defines no {head}"
        node, where = found.node, found.where
        current = found
        for part in rest:
            if current.kind != "class":
                return None, f"{current.key} is not a class"
            member = self.release.class_member(current, part)
            if member is None or member.kind not in ("method", "property", "class"):
                return None, f"{current.name} has no method or property {part} ({current.where})"
            if member.kind == "class":
                current, node, where = member.owner, member.owner.node, member.where
            else:
                node, where = self.release._function_node(member), member.where
        return node, where


def check(contract: Contract, release: Release, version: str = "") -> Report:
    return Checker(contract, release).run(version)
