"""What hotncold's own code uses of vLLM, read from its source (AST, nothing imported).

The scan finds every `from vllm... import X`, every keyword passed to a vLLM class or method
(also the keys of dicts that reach `LLM(**kwargs)`, and of the settings dicts the project
hands to vLLM: `engine_kwargs` and the PRM's `pooler` dict), and every attribute read from a
vLLM object. It follows values through a function by the types the contract declares:
`self.llm.generate(...)` returns `list[RequestOutput]`, so `for output in ...` makes `output`
a RequestOutput and `output.outputs[0].logprobs[0][t].logprob` reads
RequestOutput.outputs, CompletionOutput.logprobs and Logprob.logprob. Attributes of project
objects that hold a vLLM object (`self.llm = LLM(...)`) carry its type wherever they are read
(`engine.llm.generate` in the benchmarks).

It is deliberately simple: no inference across modules beyond those attribute names and calls
of functions in the same module. What it cannot follow it does not report, so the unit test
also asserts that the core uses are found (a scan that sees nothing proves nothing).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tools.vllm_contract.contract import Contract

DICT_SINKS = {
    # keyword of a project call -> the vLLM class whose keywords the dict's keys become
    "engine_kwargs": "LLM",  # ModelConfig/PRMConfig.engine_kwargs: passed verbatim to vllm.LLM
    "pooler": "PoolerConfig",  # prm_model_config(pooler=...): LLM(pooler_config=PoolerConfig(**d))
}
MAX_CALL_DEPTH = 3


@dataclass(frozen=True)
class Use:
    key: tuple[str, ...]
    where: str
    positional: int = 0

    @property
    def label(self) -> str:
        kind = self.key[0]
        if kind == "import":
            module, _, name = self.key[1].partition(":")
            return f"from {module} import {name}" if name else f"import {module}"
        if kind == "keyword":
            return f"{self.key[1]}({self.key[2]}=...)"
        if kind == "method":
            return f"{self.key[1]}.{self.key[2]}()"
        return f"{self.key[1]}.{self.key[2]}"


# Tracer types: ("cls", alias) an instance; ("classref", alias) the class itself;
# ("list", T); ("dict", V); ("tuple", [T...]); ("bound", alias, method);
# ("fn", node, env) a function of this module; ("self", class name); ("module", name).


def contract_type(text: str | None) -> tuple | None:
    """The tracer's view of a contract type string (only what can carry vLLM objects)."""
    if not text:
        return None
    return _ctype(ast.parse(text, mode="eval").body)


def _ctype(node: ast.expr) -> tuple | None:
    if isinstance(node, ast.BinOp):
        return _ctype(node.left) or _ctype(node.right)
    if isinstance(node, ast.Subscript):
        base = ast.unparse(node.value)
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base in ("list", "Sequence"):
            return ("list", _ctype(args[0]))
        if base == "dict":
            return ("dict", _ctype(args[-1]))
        return None
    if isinstance(node, ast.Name) and node.id[:1].isupper() and node.id not in ("Literal", "Any"):
        return ("cls", node.id)
    return None


@dataclass
class Env:
    names: dict[str, tuple | None] = field(default_factory=dict)
    dicts: dict[str, dict[str, int]] = field(default_factory=dict)
    parent: Env | None = None
    returns: list[tuple | None] = field(default_factory=list)
    sinks: list[tuple[str, str, int]] = field(default_factory=list)

    def get(self, name: str) -> tuple | None:
        env: Env | None = self
        while env is not None:
            if name in env.names:
                return env.names[name]
            env = env.parent
        return None

    def dict_keys(self, name: str) -> dict[str, int] | None:
        env: Env | None = self
        while env is not None:
            if name in env.dicts:
                return env.dicts[name]
            env = env.parent
        return None


class Scanner:
    def __init__(self, contract: Contract, root: Path) -> None:
        self.contract = contract
        self.root = root
        self.by_import = {target: alias for alias, target in contract.classes.items()}
        self.value_types = {
            e.of: contract_type(e.type) for e in contract.entries if e.kind == "import" and e.type
        }
        self.project_attrs: dict[str, tuple] = {}
        self.uses: dict[tuple, Use] = {}
        self.record_uses = False
        self._path = ""
        self._depth = 0
        self._done: dict[tuple, tuple | None] = {}
        self.functions: dict[str, dict[str, ast.FunctionDef]] = {}
        """Top-level functions of each scanned module, for `from hotncold.x import f`."""

    # Driving

    def scan(self, files: Iterable[Path]) -> list[Use]:
        trees = [(path, ast.parse(path.read_text(), filename=str(path))) for path in files]
        for path, tree in trees:
            parts = path.relative_to(self.root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            self.functions[name] = {
                n.name: n
                for n in tree.body
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
        for record in (False, True):  # pass 1 learns project attributes, pass 2 records
            self.record_uses = record
            self._done.clear()
            for path, tree in trees:
                self._path = str(path.relative_to(self.root))
                self.module(tree)
        return sorted(self.uses.values(), key=lambda u: (u.key, u.where))

    def use(self, key: tuple[str, ...], node: ast.AST, positional: int = 0) -> None:
        if not self.record_uses:
            return
        where = f"{self._path}:{getattr(node, 'lineno', 0)}"
        old = self.uses.get(key)
        if old is None or positional > old.positional:
            self.uses[key] = Use(key, where if old is None else old.where, positional)

    def module(self, tree: ast.Module) -> None:
        env = Env()
        for node in tree.body:  # functions are callable before their definition is reached
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                env.names[node.name] = ("fn", node, env)
        self.block(tree.body, env)
        self.flush(env)

    def flush(self, env: Env) -> None:
        """Dicts that reached a vLLM keyword sink: their keys are that class's keywords."""
        for name, cls, line in env.sinks:
            keys = env.dict_keys(name) or {}
            for key, key_line in keys.items():
                self.use(("keyword", cls, key), ast.Constant(lineno=key_line or line))
        env.sinks.clear()

    # Statements

    def block(self, body: list[ast.stmt], env: Env) -> None:
        for node in body:
            self.stmt(node, env)

    def stmt(self, node: ast.stmt, env: Env) -> None:
        if isinstance(node, ast.ImportFrom):
            self.import_from(node, env)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "vllm":
                    self.use(("import", alias.name), node)
                    env.names[alias.asname or alias.name.split(".")[0]] = ("module", alias.name)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            env.names[node.name] = ("fn", node, env)
            self.function(node, env, {})
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.function(item, env, {}, self_type=("self", node.name))
                else:
                    self.stmt(item, env)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            value = node.value
            kind = self.expr(value, env) if value is not None else None
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                self.assign(target, kind, value, env)
        elif isinstance(node, ast.AugAssign):
            self.expr(node.value, env)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.assign(node.target, element(self.expr(node.iter, env)), None, env)
            self.block(node.body, env)
            self.block(node.orelse, env)
        elif isinstance(node, ast.While | ast.If):
            self.expr(node.test, env)
            self.block(node.body, env)
            self.block(node.orelse, env)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                kind = self.expr(item.context_expr, env)
                if item.optional_vars is not None:
                    self.assign(item.optional_vars, kind, None, env)
            self.block(node.body, env)
        elif isinstance(node, ast.Try):
            self.block(node.body, env)
            for handler in node.handlers:
                self.block(handler.body, env)
            self.block(node.orelse, env)
            self.block(node.finalbody, env)
        elif isinstance(node, ast.Return):
            env.returns.append(self.expr(node.value, env) if node.value is not None else None)
        elif isinstance(node, ast.Expr):
            self.expr(node.value, env)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child, env)

    def import_from(self, node: ast.ImportFrom, env: Env) -> None:
        if not node.level and node.module in self.functions:
            # A project function imported from another module: its calls are followed too
            # (a settings dict built in one module and passed to LLM(**kwargs) in another).
            for alias in node.names:
                fn = self.functions[node.module].get(alias.name)
                if fn is not None:
                    env.names[alias.asname or alias.name] = ("fn", fn, Env())
            return
        if node.level or not node.module or node.module.split(".")[0] != "vllm":
            return
        for alias in node.names:
            target = f"{node.module}:{alias.name}"
            self.use(("import", target), node)
            bound = alias.asname or alias.name
            if target in self.by_import:
                env.names[bound] = ("classref", self.by_import[target])
            elif target in self.value_types:
                env.names[bound] = self.value_types[target]
            else:  # an import the contract does not know: its calls still get reported
                env.names[bound] = ("classref", alias.name)

    def assign(
        self, target: ast.expr, kind: tuple | None, value: ast.expr | None, env: Env
    ) -> None:
        if isinstance(target, ast.Name):
            env.names[target.id] = kind
            if isinstance(value, ast.Dict):
                env.dicts[target.id] = {
                    k.value: k.lineno
                    for k in value.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
            elif isinstance(value, ast.Call) and ast.unparse(value.func) == "dict":
                env.dicts[target.id] = {k.arg: value.lineno for k in value.keywords if k.arg}
        elif isinstance(target, ast.Attribute):
            self.expr(target.value, env)
            if (
                kind is not None
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                self.project_attrs[target.attr] = kind
        elif isinstance(target, ast.Subscript):
            self.expr(target.slice, env)
            if isinstance(target.value, ast.Name) and isinstance(target.slice, ast.Constant):
                keys = env.dict_keys(target.value.id)
                if keys is not None and isinstance(target.slice.value, str):
                    keys.setdefault(target.slice.value, target.lineno)
            self.expr(target.value, env)
        elif isinstance(target, ast.Tuple | ast.List):
            parts = kind[1] if kind is not None and kind[0] == "tuple" else []
            for i, item in enumerate(target.elts):
                self.assign(item, parts[i] if i < len(parts) else None, None, env)

    def function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        outer: Env,
        bound: dict[str, tuple | None],
        self_type: tuple | None = None,
    ) -> tuple | None:
        env = Env(parent=outer)
        params = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for i, arg in enumerate(params):
            env.names[arg.arg] = bound.get(arg.arg)
            if i == 0 and self_type is not None:
                env.names[arg.arg] = self_type
        self.block(node.body, env)
        self.flush(env)
        kinds = [k for k in env.returns if k is not None]
        return kinds[0] if kinds else None

    # Expressions

    def expr(self, node: ast.expr | None, env: Env, callee: bool = False) -> tuple | None:
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, self.expr(node.value, env), node.attr, callee)
        if isinstance(node, ast.Call):
            return self.call(node, env)
        if isinstance(node, ast.Subscript):
            kind = self.expr(node.value, env)
            self.expr(node.slice, env)
            if isinstance(node.slice, ast.Slice):
                return kind
            return index(kind)
        if isinstance(node, ast.IfExp):
            self.expr(node.test, env)
            body, other = self.expr(node.body, env), self.expr(node.orelse, env)
            return body or other
        if isinstance(node, ast.BoolOp):
            kinds = [self.expr(v, env) for v in node.values]
            return next((k for k in kinds if k is not None), None)
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp | ast.DictComp):
            inner = Env(parent=env)
            for generator in node.generators:
                self.assign(
                    generator.target, element(self.expr(generator.iter, inner)), None, inner
                )
                for condition in generator.ifs:
                    self.expr(condition, inner)
            if isinstance(node, ast.DictComp):
                self.expr(node.key, inner)
                self.expr(node.value, inner)
                return None
            return ("list", self.expr(node.elt, inner))
        if isinstance(node, ast.Lambda):
            self.expr(node.body, Env(parent=env))
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, env)
            elif isinstance(child, ast.keyword | ast.comprehension):
                for sub in ast.iter_child_nodes(child):
                    if isinstance(sub, ast.expr):
                        self.expr(sub, env)
        return None

    def attribute(
        self, node: ast.AST, owner: tuple | None, attr: str, callee: bool
    ) -> tuple | None:
        if owner is not None and owner[0] == "cls":
            alias = owner[1]
            if callee:
                return ("bound", alias, attr, node)
            self.use(("attribute", alias, attr), node)
            entry = self.contract.find("attribute", alias, attr)
            return contract_type(entry.type) if entry else None
        if owner is not None and owner[0] == "module":
            self.use(("import", f"{owner[1]}:{attr}"), node)
            return None
        return self.project_attrs.get(attr)

    def call(self, node: ast.Call, env: Env) -> tuple | None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        if name in ("getattr", "hasattr") and len(node.args) >= 2:
            label = node.args[1]
            owner = self.expr(node.args[0], env)
            for extra in node.args[2:]:
                self.expr(extra, env)
            if isinstance(label, ast.Constant) and isinstance(label.value, str):
                kind = self.attribute(node, owner, label.value, callee=False)
                return kind if name == "getattr" else None
            return None
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "update"
            and isinstance(func.value, ast.Name)
        ):
            keys = env.dict_keys(func.value.id)
            if keys is not None:
                for arg in node.args:
                    keys.update(self.literal_keys(arg, env))
        kind = self.expr(func, env, callee=True)
        args = [self.expr(a.value if isinstance(a, ast.Starred) else a, env) for a in node.args]
        for keyword in node.keywords:
            self.expr(keyword.value, env)
            if keyword.arg in DICT_SINKS and isinstance(keyword.value, ast.Name):
                env.sinks.append((keyword.value.id, DICT_SINKS[keyword.arg], node.lineno))
        if name in ("iter", "list", "tuple", "sorted", "reversed") and args:
            return args[0]
        if name == "next" and args:
            return element(args[0])
        if name == "zip":
            return ("list", ("tuple", [element(a) for a in args]))
        if name == "enumerate" and args:
            return ("list", ("tuple", [None, element(args[0])]))
        if kind is None:
            return None
        if kind[0] == "classref":
            self.keywords(kind[1], node, env)
            return ("cls", kind[1])
        if kind[0] == "bound":
            _, alias, method, _ = kind
            self.use(("method", alias, method), node, positional=len(node.args))
            self.keywords(f"{alias}.{method}", node, env, record_call=False)
            entry = self.contract.find("method", alias, method)
            return contract_type(entry.type) if entry else None
        if kind[0] == "fn":
            _, fn, outer = kind
            params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
            bound = {p: a for p, a in zip(params, args) if a is not None}
            for keyword in node.keywords:
                if keyword.arg:
                    value = self.expr(keyword.value, env)
                    if value is not None:
                        bound[keyword.arg] = value
            memo = (id(fn), tuple(sorted((k, repr(v[:2])) for k, v in bound.items())))
            if memo in self._done:
                return self._done[memo]
            if self._depth >= MAX_CALL_DEPTH:
                return None
            self._done[memo] = None  # recursion guard
            self._depth += 1
            try:
                self._done[memo] = self.function(fn, outer, bound)
            finally:
                self._depth -= 1
            return self._done[memo]
        return None

    def keywords(self, target: str, node: ast.Call, env: Env, record_call: bool = True) -> None:
        if record_call and node.args:
            self.use(("positional", target), node, positional=len(node.args))
        for keyword in node.keywords:
            if keyword.arg is not None:
                self.use(("keyword", target, keyword.arg), keyword.value)
            elif isinstance(keyword.value, ast.Name):
                # LLM(**kwargs): the dict's keys are keywords, wherever in the function they
                # were set (resolved once the function has been read).
                env.sinks.append((keyword.value.id, target, node.lineno))

    def literal_keys(self, node: ast.expr, env: Env) -> dict[str, int]:
        """Keys of a dict literal, or of the dict literal a same-module function returns."""
        if isinstance(node, ast.Dict):
            return {k.value: k.lineno for k in node.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            fn = env.get(node.func.id)
            if fn is not None and fn[0] == "fn":
                keys: dict[str, int] = {}
                for sub in ast.walk(fn[1]):
                    if isinstance(sub, ast.Return) and isinstance(sub.value, ast.Dict):
                        keys.update(self.literal_keys(sub.value, env))
                return keys
        return {}


def element(kind: tuple | None) -> tuple | None:
    """What iterating over a value of this kind yields."""
    if kind is None:
        return None
    if kind[0] == "list":
        return kind[1]
    return None


def index(kind: tuple | None) -> tuple | None:
    if kind is None:
        return None
    if kind[0] in ("list", "dict"):
        return kind[1]
    return None


def project_files(root: Path) -> list[Path]:
    """The code that runs against CUDA vLLM: the package and the benchmarks (tests run on the
    CPU build only and may read its internals)."""
    files = []
    for folder in ("hotncold", "benchmarks"):
        files += sorted((root / folder).rglob("*.py"))
    return files


def scan(contract: Contract, root: Path, files: Iterable[Path] | None = None) -> list[Use]:
    return Scanner(contract, root).scan(files if files is not None else project_files(root))


@dataclass
class Drift:
    unlisted: list[Use]
    unused: list[str]
    positional: list[str]

    @property
    def ok(self) -> bool:
        return not (self.unlisted or self.unused or self.positional)

    def lines(self, contract_path: str) -> list[str]:
        out = [
            f"{u.where}: uses {u.label}, which {contract_path} does not list" for u in self.unlisted
        ]
        out += [
            f"{contract_path}: {label} is listed but no code in hotncold/ or benchmarks/ uses it"
            for label in self.unused
        ]
        out += self.positional
        return out


def compare(contract: Contract, uses: list[Use]) -> Drift:
    """Uses the contract lacks, contract entries nothing uses, and positional-argument excess."""
    listed = {e.use: e for e in contract.entries if e.kind != "behaviour"}
    unlisted, positional = [], []
    seen: set[tuple] = set()
    for use in uses:
        if use.key[0] == "positional":
            continue  # constructors take keywords only in hotncold; reported below if not
        entry = listed.get(use.key)
        if entry is None:
            unlisted.append(use)
            continue
        seen.add(use.key)
        if use.key[0] == "method" and use.positional > (entry.positional or 0):
            positional.append(
                f"{use.where}: passes {use.positional} positional arguments to {use.label}; "
                f"the contract's entry says positional = {entry.positional or 0}"
            )
    for use in uses:
        if use.key[0] == "positional":
            positional.append(
                f"{use.where}: passes positional arguments to {use.key[1]}(...); "
                "pass keywords (the contract checks keywords)"
            )
    unused = [e.label for key, e in listed.items() if key not in seen]
    return Drift(unlisted, unused, positional)
