"""A stand-in for the Hugging Face Hub on localhost: the HTTP endpoints a push uses, on memory.

huggingface_hub (and `datasets`, on top of it) talk to whatever `HF_ENDPOINT` names, so a push
through the real client libraries lands here: whoami, repository info and creation, the
pre-upload check (parquet and arrow files go to LFS, as the hub's default .gitattributes says,
others inline in the commit), the LFS batch API with its basic transfer (one PUT per object),
NDJSON commits, the card's YAML check, tree listings, paths-info and file downloads. Every
request is recorded; repositories keep their files and commits. What the client sends is what
the hub would receive, so a renamed endpoint, a changed payload or a wrong argument fails the
test talking to this. Not emulated: Xet storage (clients must run with HF_HUB_DISABLE_XET=1,
which makes huggingface_hub use LFS, as it does where hf_xet is not installed). Written on the
standard library (`http.server`): a test helper, no dependency.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
LFS_SUFFIXES = (".parquet", ".arrow")
"""Stored through LFS (from the hub's default .gitattributes); other files go inline."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Repo:
    kind: str
    repo_id: str
    visibility: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    """Every commit: its header (summary, description, parentCommit) and the paths it touched."""

    @property
    def sha(self) -> str:
        return _sha(f"{self.repo_id}@{len(self.commits)}")


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class HubStandIn:
    """Serves the hub's push endpoints on 127.0.0.1 until `close()`."""

    def __init__(self, user: str = "alice", orgs: tuple[str, ...] = ()) -> None:
        self.user = user
        self.orgs = list(orgs)
        self.role = "write"
        self.whoami: tuple[int, dict[str, Any]] | None = None
        """An answer for /api/whoami-v2 other than the token owner's (status, body)."""
        self.failing: dict[str, int] = {}
        """Repository actions (commit, preupload, ...) answered with this HTTP status."""
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        """LFS objects by sha256, as uploaded."""
        self.requests: list[Request] = []
        self.unknown: list[str] = []
        """Requests no route answered (a changed client would show up here)."""
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    self.command,
                    unquote(url.path),
                    parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                stand_in.requests.append(request)
                status, headers, body = stand_in.answer(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def repo(self, repo_id: str, kind: str = "dataset") -> Repo:
        return self.repos[(kind, repo_id)]

    # --- routing --------------------------------------------------------------------------

    def answer(self, r: Request) -> tuple[int, dict[str, str], bytes]:
        path = r.path
        if path == "/api/whoami-v2" and r.method == "GET":
            if self.whoami is not None:
                return self._json(self.whoami[1], self.whoami[0])
            return self._json(
                {
                    "type": "user",
                    "name": self.user,
                    "orgs": [{"name": o} for o in self.orgs],
                    "auth": {"type": "access_token", "accessToken": {"role": self.role}},
                }
            )
        if path == "/api/repos/create" and r.method == "POST":
            return self._create(r.json())
        if path == "/api/validate-yaml" and r.method == "POST":
            return self._validate_card(r.json())
        if path == "/api/agent-harnesses" and r.method == "GET":  # the client's telemetry
            return self._json({"standardEnvVars": [], "harnesses": {}})
        api = re.fullmatch(
            r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(revision|preupload|commit|tree|"
            r"paths-info)/([^/]+)(/.*)?)?",
            path,
        )
        if api:
            kind, repo_id, action, revision, rest = api.groups()
            if action in self.failing:
                status = self.failing[action]
                return self._error(status, None, f"{status} from the stand-in's {action}")
            repo = self.repos.get((KINDS[kind], repo_id))
            if repo is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            if revision is not None and revision != "main" and revision != repo.sha:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            if action in (None, "revision") and r.method == "GET":
                return self._json(self._info(repo))
            if action == "preupload" and r.method == "POST":
                modes = [
                    {
                        "path": f["path"],
                        "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                        "shouldIgnore": False,
                    }
                    for f in r.json()["files"]
                ]
                return self._json({"files": modes})
            if action == "commit" and r.method == "POST":
                return self._commit(repo, r.body)
            if action == "tree" and r.method == "GET":
                folder = (rest or "").strip("/")
                entry = self._entry(repo, folder)
                if entry is None or entry["type"] != "directory":
                    return self._error(404, "EntryNotFound", f"{folder} does not exist")
                recursive = r.query.get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._json(self._tree(repo, folder, recursive))
            if action == "paths-info" and r.method == "POST":
                paths = self._form_or_json(r).get("paths", [])
                return self._json([e for p in paths if (e := self._entry(repo, p)) is not None])
        batch = re.fullmatch(
            r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path
        )
        if batch and r.method == "POST":
            return self._lfs_batch(r.json())
        upload = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)
        if upload and r.method == "PUT":
            oid = upload.group(1)
            if hashlib.sha256(r.body).hexdigest() != oid:
                return self._error(400, None, "the uploaded content does not match its oid")
            self.blobs[oid] = r.body
            return 200, {}, b""
        resolve = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if resolve and r.method in ("GET", "HEAD"):
            kind, repo_id, revision, file = resolve.groups()
            repo = self.repos.get((KINDS.get(kind or "models", "model"), repo_id))
            if repo is None:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            if file not in repo.files:
                return self._error(404, "EntryNotFound", f"{file} does not exist")
            data = repo.files[file]
            return (
                200,
                {
                    "content-type": "application/octet-stream",
                    "etag": f'"{_sha(data.decode("latin-1"))}"',
                    "x-repo-commit": repo.sha,
                },
                data,
            )
        self.unknown.append(f"{r.method} {r.path}")
        return self._error(404, None, f"no route {r.method} {r.path} in the hub stand-in")

    # --- endpoints ------------------------------------------------------------------------

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        kind = body.get("type") or "model"
        owner = body.get("organization") or self.user
        if owner not in (self.user, *self.orgs):
            return self._error(403, None, f"You don't have the rights to create under {owner}")
        repo_id = f"{owner}/{body['name']}"
        prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[kind]
        if (kind, repo_id) in self.repos:
            return self._error(409, None, "You already created this repo")
        self.repos[(kind, repo_id)] = Repo(kind, repo_id, body.get("visibility"))
        return self._json({"url": f"{self.url}/{prefix}{repo_id}", "name": repo_id})

    def _validate_card(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        """A card's metadata must be YAML between `---` lines (the hub checks more)."""
        match = re.match(r"---\n(.*?)\n---\n", body["content"], re.DOTALL)
        try:
            meta = yaml.safe_load(match.group(1)) if match else None
            problem = None if isinstance(meta, dict) else "the card has no YAML metadata"
        except yaml.YAMLError as error:
            problem = str(error)
        if problem is not None:
            return self._json({"errors": [{"message": problem}], "warnings": []}, 400)
        return self._json({"errors": [], "warnings": []})

    def _lfs_batch(self, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", []):
            return self._error(400, None, "the stand-in takes basic LFS uploads only")
        objects = []
        for o in body["objects"]:
            entry: dict[str, Any] = {"oid": o["oid"], "size": o["size"], "authenticated": True}
            if o["oid"] not in self.blobs:  # known objects get no actions: nothing to send
                entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}"}}
            objects.append(entry)
        return self._json({"transfer": "basic", "objects": objects})

    def _commit(self, repo: Repo, body: bytes) -> tuple[int, dict[str, str], bytes]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        parent = header.get("parentCommit")
        if parent is not None and parent != repo.sha:
            return self._error(
                412, None, "A commit has happened since. Please refresh and try again."
            )
        touched = []
        for item in lines:
            key, value = item["key"], item["value"]
            if key == "file":
                repo.files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                if value["oid"] not in self.blobs:
                    return self._error(400, None, f"LFS object {value['oid']} was never uploaded")
                repo.files[value["path"]] = self.blobs[value["oid"]]
            elif key == "deletedFile":
                repo.files.pop(value["path"], None)
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for p in [p for p in repo.files if p.startswith(folder)]:
                    del repo.files[p]
            elif key != "header":
                return self._error(400, None, f"the stand-in takes no {key!r} operations")
            if key != "header":
                touched.append(value["path"])
        repo.commits.append({**header, "paths": touched})
        prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[repo.kind]
        return self._json(
            {
                "success": True,
                "commitOid": repo.sha,
                "commitUrl": f"{self.url}/{prefix}{repo.repo_id}/commit/{repo.sha}",
            }
        )

    def _info(self, repo: Repo) -> dict[str, Any]:
        return {
            "_id": _sha(repo.repo_id),
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.sha,
            "private": repo.visibility == "private",
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "lastModified": "2026-12-01T00:00:00.000Z",
            "createdAt": "2026-12-01T00:00:00.000Z",
            "siblings": [{"rfilename": p} for p in sorted(repo.files)],
        }

    def _entry(self, repo: Repo, path: str) -> dict[str, Any] | None:
        path = path.strip("/")
        if path in repo.files:
            data = repo.files[path]
            return {"type": "file", "path": path, "size": len(data), "oid": _sha(repr(data))}
        if any(p.startswith(path + "/") for p in repo.files) or path == "":
            return {"type": "directory", "path": path, "oid": _sha(path)}
        return None

    def _tree(self, repo: Repo, folder: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = folder + "/" if folder else ""
        out: dict[str, dict[str, Any]] = {}
        for p in sorted(repo.files):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 1)):
                sub = prefix + "/".join(parts[:depth])
                out.setdefault(sub, {"type": "directory", "path": sub, "oid": _sha(sub)})
            if recursive or len(parts) == 1:
                out[p] = self._entry(repo, p)  # type: ignore[assignment]
            else:
                sub = prefix + parts[0]
                out.setdefault(sub, {"type": "directory", "path": sub, "oid": _sha(sub)})
        return list(out.values())

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def _form_or_json(r: Request) -> dict[str, Any]:
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        form = parse_qs(r.body.decode())
        return {k: v if k == "paths" else v[0] for k, v in form.items()}

    @staticmethod
    def _json(body: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
        return status, {"content-type": "application/json"}, json.dumps(body).encode()

    @staticmethod
    def _error(status: int, code: str | None, message: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"content-type": "application/json", "x-error-message": message}
        if code is not None:
            headers["x-error-code"] = code
        return status, headers, json.dumps({"error": message}).encode()
