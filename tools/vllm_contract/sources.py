"""The Python sources of a CUDA `vllm` release, read from its PyPI wheel without downloading it.

A wheel is a zip of 250-430 MB, almost all of it compiled CUDA kernels; its .py members are
5-12 MB compressed. The zip's central directory (at its end) says where each member lives, so
HTTP range requests fetch the directory and then only the .py members asked for, coalesced into
a few large requests. Everything fetched is kept under the cache folder
(`~/.cache/hotncold/vllm-sources/<version>/`): the member index as `index.json` and the files
under their wheel paths, so a second run needs no network at all.

Written on the standard library on purpose: the check must run without the venv's vLLM (or any
venv), in CI, before anything is installed. `zipfile` parses the directory over a seekable
range-request file; member data is inflated here from the fetched spans.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from hotncold.engine.vllm_versions import release_key

PYPI_PROJECT_JSON = "https://pypi.org/pypi/vllm/json"
"""The project's JSON API: every release and its files (the per-version URL is not served by
every PyPI mirror; this one is)."""

TIMEOUT = 60
SPAN_GAP = 256 * 1024
"""Members closer than this share one range request (fewer round trips beat fewer bytes)."""
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
LOCAL_SLACK = 1024
"""A local header's extra field is not in the central directory; wheels keep it empty or tiny."""
INDEX_FORMAT = 1
INDEX_MAX_AGE = 24 * 3600


def default_cache() -> Path:
    base = os.environ.get("HOTNCOLD_CACHE") or Path.home() / ".cache" / "hotncold"
    return Path(base) / "vllm-sources"


class FetchError(RuntimeError):
    """The package index could not be read (offline, or the release has no such wheel)."""


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "hotncold-vllm-contract"})
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            if headers and "Range" in headers and response.status != 206:
                raise FetchError(f"{url}: the server ignored a range request")
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise FetchError(f"cannot read {url}: {error}") from error


def is_final(version: str) -> bool:
    return re.fullmatch(r"\d+(\.\d+)*(\.post\d+)?", version) is not None


@dataclass
class Release:
    """One release's x86-64 wheel on the package index."""

    version: str
    url: str
    filename: str
    size: int
    sha256: str
    requires_python: str | None = None


def project_json(cache: Path | None = None, refresh: bool = False, offline: bool = False) -> dict:
    """PyPI's JSON for the vllm project, cached beside the sources.

    Re-read when `refresh` is set or the copy is older than a day (new releases change which
    one is the newest supported); offline, or when the index cannot be reached, the cached
    copy is used whatever its age.
    """
    path = (cache or default_cache()) / "pypi-vllm.json"
    fresh = path.exists() and time.time() - path.stat().st_mtime < INDEX_MAX_AGE
    if path.exists() and (offline or (fresh and not refresh)):
        return json.loads(path.read_text())
    if offline:
        raise FetchError(f"the vllm release list is not cached under {path.parent}")
    try:
        data = json.loads(_get(PYPI_PROJECT_JSON))
    except FetchError:
        if path.exists():
            return json.loads(path.read_text())
        raise
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(data).encode())
    return data


def releases(data: dict) -> list[str]:
    """Final (not pre-release, not yanked) versions that have files, oldest first."""
    out = []
    for version, files in data.get("releases", {}).items():
        if is_final(version) and files and not all(f.get("yanked") for f in files):
            out.append(version)
    return sorted(out, key=release_key)


def wheel_of(data: dict, version: str) -> Release:
    """The release's manylinux x86-64 wheel; of re-uploads with a build tag, the one pip picks."""
    files = data.get("releases", {}).get(version)
    if not files:
        raise FetchError(f"vllm {version} is not on the package index")
    wheels = [
        f
        for f in files
        if f["filename"].endswith(".whl") and "x86_64" in f["filename"] and not f.get("yanked")
    ]
    if not wheels:
        raise FetchError(f"vllm {version} has no x86-64 wheel on the package index")

    def build_tag(name: str) -> int:
        # name-version(-build)?-python-abi-platform.whl: a build tag makes 6 parts.
        parts = name[: -len(".whl")].split("-")
        return int(re.match(r"\d*", parts[2]).group() or 0) if len(parts) == 6 else -1

    best = max(wheels, key=lambda f: build_tag(f["filename"]))
    return Release(
        version=version,
        url=urllib.parse.urljoin(PYPI_PROJECT_JSON, best["url"]),
        filename=best["filename"],
        size=int(best["size"]),
        sha256=best.get("digests", {}).get("sha256", ""),
        requires_python=best.get("requires_python"),
    )


class RangeFile(io.RawIOBase):
    """A read-only seekable file over HTTP range requests (for `zipfile`'s directory parse)."""

    def __init__(self, url: str, size: int, block: int = 1 << 20) -> None:
        self.url, self.size, self.block = url, size, block
        self.pos = 0
        self.requests = 0
        self.bytes = 0
        self._cache: tuple[int, bytes] = (0, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        start, data = self._cache
        if not (start <= self.pos and self.pos + want <= start + len(data)):
            # Read ahead: the central directory is parsed in many small reads.
            end = min(self.size, self.pos + max(want, self.block))
            data = self.range(self.pos, end)
            start = self.pos
            self._cache = (start, data)
        chunk = data[self.pos - start : self.pos - start + want]
        buffer[: len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)

    def range(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of the file."""
        self.requests += 1
        data = _get(self.url, {"Range": f"bytes={start}-{end - 1}"})
        self.bytes += len(data)
        if len(data) != end - start:
            raise FetchError(f"{self.url}: asked for {end - start} bytes, got {len(data)}")
        return data


@dataclass
class Member:
    offset: int
    compressed: int
    size: int
    method: int
    crc: int


@dataclass
class FetchStats:
    requests: int = 0
    bytes: int = 0
    members: int = 0


@dataclass
class SourceTree:
    """One release's Python sources: cached files, plus what the wheel holds (`index`)."""

    version: str
    root: Path
    release: Release
    index: dict[str, Member]
    offline: bool = False
    stats: FetchStats = field(default_factory=FetchStats)

    def has(self, path: str) -> bool:
        return path in self.index

    def read(self, path: str) -> str | None:
        """A member's text (fetched and cached on first use); None when the wheel lacks it."""
        if path not in self.index:
            return None
        local = self.root / path
        if not local.exists():
            self.fetch([path])
        return local.read_text(encoding="utf-8")

    def fetch(self, paths: Iterable[str]) -> None:
        """Fetch the uncached members among `paths` in as few range requests as possible."""
        todo = sorted(
            (p for p in set(paths) if p in self.index and not (self.root / p).exists()),
            key=lambda p: self.index[p].offset,
        )
        if not todo:
            return
        if self.offline:
            raise FetchError(
                f"vllm {self.version}: {len(todo)} source files are not cached "
                f"(first: {todo[0]}); run once with network access"
            )
        spans: list[list[str]] = []
        for path in todo:
            member = self.index[path]
            if spans:
                last = self.index[spans[-1][-1]]
                if member.offset - (last.offset + last.compressed + LOCAL_SLACK) < SPAN_GAP:
                    spans[-1].append(path)
                    continue
            spans.append([path])
        reader = RangeFile(self.release.url, self.release.size)

        def get(span: list[str]) -> list[tuple[str, bytes]]:
            first, last = self.index[span[0]], self.index[span[-1]]
            start = first.offset
            end = min(self.release.size, last.offset + 30 + len(span[-1]) * 4 + last.compressed)
            end = min(self.release.size, end + LOCAL_SLACK)
            data = reader.range(start, end)
            return [(p, self._extract(p, data, start, reader)) for p in span]

        with ThreadPoolExecutor(max_workers=4) as pool:
            for results in pool.map(get, spans):
                for path, text in results:
                    _atomic_write(self.root / path, text)
                    self.stats.members += 1
        self.stats.requests += reader.requests
        self.stats.bytes += reader.bytes

    def _extract(self, path: str, data: bytes, base: int, reader: RangeFile) -> bytes:
        member = self.index[path]
        at = member.offset - base
        header = data[at : at + LOCAL_HEADER.size]
        fields = LOCAL_HEADER.unpack(header)
        if fields[0] != b"PK\x03\x04":
            raise FetchError(f"{self.release.filename}: no local header for {path}")
        start = at + LOCAL_HEADER.size + fields[9] + fields[10]
        raw = data[start : start + member.compressed]
        if len(raw) < member.compressed:  # a larger local extra field than the slack allowed
            begin = base + start
            raw = reader.range(begin, begin + member.compressed)
        if member.method == zipfile.ZIP_DEFLATED:
            out = zlib.decompress(raw, -15)
        elif member.method == zipfile.ZIP_STORED:
            out = raw
        else:
            raise FetchError(f"{path}: unsupported zip compression {member.method}")
        if zlib.crc32(out) != member.crc or len(out) != member.size:
            raise FetchError(f"{self.release.filename}: {path} failed its CRC check")
        return out


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _keep(name: str) -> bool:
    """Members worth indexing: Python sources and the wheel's metadata."""
    return name.endswith(".py") or (".dist-info/" in name and not name.endswith("RECORD"))


def open_release(
    version: str,
    cache: Path | None = None,
    offline: bool = False,
    prefetch: Callable[[str], bool] | None = None,
) -> SourceTree:
    """The release's source tree, reading the wheel's directory once and caching it.

    `prefetch` picks members to fetch at once (in coalesced requests); others come on demand.
    Offline, only what a previous run cached is available.
    """
    root = (cache or default_cache()) / version
    index_path = root / "index.json"
    stats = FetchStats()
    if index_path.exists():
        saved = json.loads(index_path.read_text())
        release = Release(**saved["release"])
        index = {name: Member(*fields) for name, fields in saved["members"].items()}
    else:
        if offline:
            raise FetchError(f"vllm {version} sources are not cached under {root}")
        release = wheel_of(project_json(cache), version)
        reader = RangeFile(release.url, release.size)
        with zipfile.ZipFile(io.BufferedReader(reader, 1 << 20)) as archive:
            infos = archive.infolist()
        index = {
            info.filename: Member(
                info.header_offset, info.compress_size, info.file_size, info.compress_type, info.CRC
            )
            for info in infos
            if _keep(info.filename)
        }
        stats.requests += reader.requests
        stats.bytes += reader.bytes
        saved = {
            "format": INDEX_FORMAT,
            "release": release.__dict__,
            "members": {name: list(m.__dict__.values()) for name, m in index.items()},
        }
        _atomic_write(index_path, json.dumps(saved).encode())
    tree = SourceTree(version, root, release, index, offline=offline, stats=stats)
    if prefetch is not None:
        wanted = [name for name in index if prefetch(name)]
        if offline:
            wanted = [name for name in wanted if (root / name).exists()]
        tree.fetch(wanted)
    return tree


def metadata(tree: SourceTree) -> str | None:
    """The wheel's METADATA file (its Requires-Dist lines pin torch)."""
    name = next((n for n in tree.index if n.endswith(".dist-info/METADATA")), None)
    return tree.read(name) if name else None
