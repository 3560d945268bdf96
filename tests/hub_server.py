"""A minimal Hugging Face Hub on 127.0.0.1, enough for `huggingface_hub.hf_hub_download`.

It serves `HEAD`/`GET /<owner>/<name>/resolve/<revision>/<path>` with the headers the client
relies on (`X-Repo-Commit`, `ETag`: sha256 for `*.safetensors` like LFS files, the git blob sha1
otherwise, `Content-Length`), byte ranges (`Range: bytes=N-` gets 206, as the Hub's CDN does)
and the Hub's `X-Error-Code` on 404s (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`).

Faults can be switched on: `hang` (every request waits until the server stops or
`hang_seconds` pass, without answering), `trickle` (every answer, status line included, comes
one byte per `trickle_seconds`), `trickle_bodies` (the same for file bodies only), `corrupt` (a
file's bytes are damaged in transit while its headers still announce the original), `cut` (a
file's body stops halfway and the connection closes, `cuts[path]` times), and `status` (every
file request after the first `status_after` answers that HTTP status).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def etag_of(path: str, data: bytes) -> str:
    """What the Hub announces: sha256 for LFS files, the git blob sha1 for the others."""
    if path.endswith(".safetensors"):
        return hashlib.sha256(data).hexdigest()
    return git_blob_sha1(data)


class QuietServer(ThreadingHTTPServer):
    """Says nothing when a client hangs up mid-answer (the faults make them do so)."""

    def handle_error(self, request, client_address) -> None:
        pass


@dataclass
class FakeRepo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """commit hash -> {path in repo: content}."""
    refs: dict[str, str] = field(default_factory=dict)
    """branch or tag -> commit hash."""


class FakeHub:
    """The server and its repos; use as a context manager or call `start` and `stop`."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str | None] = []
        self.hang = False
        self.hang_seconds = 10.0
        self.trickle = False
        self.trickle_bodies = False
        self.trickle_seconds = 0.5
        self.corrupt: set[str] = set()
        """Paths (in any repo) served with damaged bytes."""
        self.cuts: dict[str, int] = {}
        """Path -> how many more GETs of it stop halfway through the body."""
        self.status: int | None = None
        self.status_after = 0
        """How many file requests are answered normally before `status` applies."""
        self.ranges: list[str | None] = []
        """The Range header of every GET of a file, in order."""
        self._file_requests = 0
        self._stopped = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # content

    def publish(self, repo_id: str, files: dict[str, bytes], refs: tuple[str, ...] = ("main",)
                ) -> str:
        """Add a commit holding exactly `files` and point `refs` at it; return its hash."""
        repo = self.repos.setdefault(repo_id, FakeRepo())
        digest = hashlib.sha1(repo_id.encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        for ref in refs:
            repo.refs[ref] = commit
        return commit

    def publish_folder(self, repo_id: str, folder: Path, refs: tuple[str, ...] = ("main",),
                       prefix: str = "", extra: dict[str, bytes] | None = None) -> str:
        """Publish every file under `folder` (under `prefix` in the repo) plus `extra`."""
        files = {prefix + path.relative_to(folder).as_posix(): path.read_bytes()
                 for path in sorted(folder.rglob("*")) if path.is_file()}
        files.update(extra or {})
        return self.publish(repo_id, files, refs)

    # server

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        self._server = QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop answering: later requests are refused (connection error)."""
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                hub._answer(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._answer(self, body=True)

            def log_message(self, format: str, *args) -> None:  # keep test output clean
                pass

        return Handler

    def _answer(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        path = urlsplit(request.path).path
        self.requests.append((request.command, path))
        self.authorizations.append(request.headers.get("Authorization"))
        if path == "/api/agent-harnesses":  # huggingface_hub's user-agent registry
            return self._send(request, 200, b'{"standardEnvVars": [], "harnesses": {}}', body,
                              {"Content-Type": "application/json"})
        if self.hang:
            self._stopped.wait(self.hang_seconds)
            return
        parts = path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._send(request, 404, b"not found", body, {})
        self._file_requests += 1
        if self.status is not None and self._file_requests > self.status_after:
            return self._send(request, self.status, b"failing on purpose", body, {})
        repo_id, revision, filename = "/".join(parts[:2]), unquote(parts[3]), "/".join(parts[4:])
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._send(request, 404, b"Repository not found", body,
                              {"X-Error-Code": "RepoNotFound"})
        commit = revision if revision in repo.commits else repo.refs.get(revision)
        if commit is None:
            return self._send(request, 404, b"Invalid rev id", body,
                              {"X-Error-Code": "RevisionNotFound"})
        data = repo.commits[commit].get(filename)
        if data is None:
            return self._send(request, 404, b"Entry not found", body,
                              {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag_of(filename, data)}"',
                   "Content-Type": "application/octet-stream"}
        if filename in self.corrupt:
            data = bytes(byte ^ 0xFF for byte in data)  # same length, other bytes
        status, size = 200, len(data)
        if body:
            self.ranges.append(request.headers.get("Range"))
            start = self._range_start(request.headers.get("Range"))
            if start:
                headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
                status, data = 206, data[start:]
        cut = body and self.cuts.get(filename, 0) > 0
        if cut:
            self.cuts[filename] -= 1
        self._send(request, status, data, body, headers, cut=cut)

    @staticmethod
    def _range_start(header: str | None) -> int:
        if not header or not header.startswith("bytes=") or not header.endswith("-"):
            return 0
        return int(header[len("bytes="):-1])

    def _send(self, request: BaseHTTPRequestHandler, status: int, data: bytes, body: bool,
              headers: dict[str, str], cut: bool = False) -> None:
        if self.trickle:
            request.wfile.write = self._trickled(request.wfile.write)
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if not body:
            return
        if cut:
            request.wfile.write(data[:len(data) // 2])
            request.wfile.flush()
            request.close_connection = True
            request.connection.shutdown(2)
            return
        if self.trickle_bodies and "X-Repo-Commit" in headers:
            self._trickled(request.wfile.write)(data)
        else:
            request.wfile.write(data)

    def _trickled(self, write):
        """`write`, one byte per `trickle_seconds`, until the data is out or the server stops."""
        def slowly(data: bytes) -> None:
            for index in range(len(data)):
                if self._stopped.wait(self.trickle_seconds):
                    return
                write(data[index:index + 1])
                request_flush = getattr(write, "__self__", None)
                if request_flush is not None and hasattr(request_flush, "flush"):
                    request_flush.flush()
        return slowly
