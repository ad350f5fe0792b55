"""Files API 2.0 on Unity Catalog volumes: files, directories and presigned downloads.

A path is valid only under a volume that exists; whether one does is asked of the catalog
API (`volume_exists`, wired by the server), which in turn drops a volume's files here.
"""

from __future__ import annotations

import posixpath
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from meshops.testing.workspace.common import (
    ApiError,
    ApiPart,
    Request,
    Response,
    Route,
    decode_token,
    encode_token,
    flag,
    invalid,
    json_response,
    now_ms,
    opt_int,
    required,
)


@dataclass
class File:
    content: bytes
    modified_ms: int


class FilesApi(ApiPart):
    public_paths = ("/_double/presigned/",)

    def __init__(
        self,
        *,
        volume_exists: Callable[[str], bool],
        page_size: int,
        presigned_urls: bool,
    ) -> None:
        self._volume_exists = volume_exists
        self.page_size = page_size
        self.presigned_urls = presigned_urls
        self.files: dict[str, File] = {}
        self.dirs: set[str] = set()
        self._presigned: dict[str, str] = {}

    def routes(self) -> list[Route]:
        files = r"/api/2\.0/fs/files(?P<p>/.*)"
        dirs = r"/api/2\.0/fs/directories(?P<p>/.*)"
        return [
            ("PUT", files, self._files_put),
            ("GET", files, self._files_get),
            ("HEAD", files, self._files_get),
            ("DELETE", files, self._files_delete),
            ("PUT", dirs, self._dirs_put),
            ("GET", dirs, self._dirs_list),
            ("HEAD", dirs, self._dirs_head),
            ("DELETE", dirs, self._dirs_delete),
            ("POST", r"/api/2\.0/fs/create-download-url", self._create_download_url),
            ("GET", r"/_double/presigned/(?P<token>[^/]+)", self._presigned_get),
        ]

    def drop_volume(self, root: str) -> None:
        """Forget every file and directory under a dropped volume's `root`."""
        for path in [p for p in self.files if p.startswith(root + "/")]:
            del self.files[path]
        self.dirs = {d for d in self.dirs if d != root and not d.startswith(root + "/")}

    # ------------------------------------------------------------ paths

    def _volume_path(self, raw: str) -> tuple[str, str]:
        """Normalised path and its volume root; 404 when the volume does not exist."""
        if not raw.startswith("/Volumes/"):
            raise invalid(
                f"Path {raw!r} is not a volume path: /Volumes/<catalog>/<schema>/<volume>/..."
            )
        norm = posixpath.normpath(raw)
        parts = norm.split("/")
        if len(parts) < 5 or any(not p for p in parts[1:]):
            raise invalid(
                f"Path {raw!r} is not a volume path: /Volumes/<catalog>/<schema>/<volume>/..."
            )
        parts[2:5] = [p.lower() for p in parts[2:5]]
        root = "/".join(parts[:5])
        if not self._volume_exists(".".join(parts[2:5])):
            raise ApiError(404, "NOT_FOUND", f"Volume '{'.'.join(parts[2:5])}' does not exist.")
        return "/".join(parts), root

    def _is_dir(self, path: str, root: str) -> bool:
        return path == root or path in self.dirs

    def _mkdirs(self, path: str, root: str) -> None:
        current = path
        while current != root:
            if current in self.files:
                raise ApiError(
                    409, "ALREADY_EXISTS", f"A file exists at {current}, not a directory"
                )
            self.dirs.add(current)
            current = posixpath.dirname(current)

    # ------------------------------------------------------------ files

    def _files_put(self, request: Request, m: re.Match[str]) -> Response:
        path, root = self._volume_path(m["p"])
        if self._is_dir(path, root):
            raise ApiError(409, "ALREADY_EXISTS", f"A directory exists at {path}")
        overwrite = flag(request.query.get("overwrite", "true"))
        if path in self.files and not overwrite:
            raise ApiError(409, "ALREADY_EXISTS", "The file being created already exists.")
        self._mkdirs(posixpath.dirname(path), root)
        self.files[path] = File(request.body, now_ms())
        return Response(204)

    def _file(self, raw: str) -> tuple[str, File]:
        path, _root = self._volume_path(raw)
        found = self.files.get(path)
        if found is None:
            raise ApiError(404, "NOT_FOUND", "The file being accessed is not found.")
        return path, found

    def _file_response(self, request: Request, found: File) -> Response:
        modified = formatdate(found.modified_ms / 1000, usegmt=True)
        since = request.headers.get("if-unmodified-since")
        if (
            since is not None
            and found.modified_ms // 1000 > parsedate_to_datetime(since).timestamp()
        ):
            raise ApiError(
                412, "PRECONDITION_FAILED", "The file has been modified since the given time."
            )
        content, status = found.content, 200
        headers = {"Content-Type": "application/octet-stream", "Last-Modified": modified}
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("range", ""))
        if ranged:
            start = int(ranged[1])
            end = int(ranged[2]) + 1 if ranged[2] else len(content)
            if start >= len(content) and content:
                raise ApiError(416, "INVALID_RANGE", f"Range start {start} is beyond the file size")
            headers["Content-Range"] = f"bytes {start}-{max(end, start + 1) - 1}/{len(content)}"
            content, status = content[start:end], 206
        headers["Content-Length"] = str(len(content))
        return Response(status, content, headers)

    def _files_get(self, request: Request, m: re.Match[str]) -> Response:
        _path, found = self._file(m["p"])
        return self._file_response(request, found)

    def _files_delete(self, request: Request, m: re.Match[str]) -> Response:
        path, _found = self._file(m["p"])
        del self.files[path]
        return Response(204)

    # ------------------------------------------------------------ directories

    def _dirs_put(self, request: Request, m: re.Match[str]) -> Response:
        path, root = self._volume_path(m["p"])
        self._mkdirs(path, root)
        return Response(204)

    def _dir(self, raw: str) -> tuple[str, str]:
        path, root = self._volume_path(raw)
        if not self._is_dir(path, root):
            raise ApiError(404, "NOT_FOUND", f"The directory being accessed is not found: {path}")
        return path, root

    def _dirs_head(self, request: Request, m: re.Match[str]) -> Response:
        self._dir(m["p"])
        return Response(200)

    def _children(self, path: str) -> list[dict[str, Any]]:
        entries = [
            {"path": d, "name": posixpath.basename(d), "is_directory": True}
            for d in self.dirs
            if posixpath.dirname(d) == path
        ]
        entries += [
            {
                "path": p,
                "name": posixpath.basename(p),
                "is_directory": False,
                "file_size": len(f.content),
                "last_modified": f.modified_ms,
            }
            for p, f in self.files.items()
            if posixpath.dirname(p) == path
        ]
        return sorted(entries, key=lambda e: str(e["name"]))

    def _dirs_list(self, request: Request, m: re.Match[str]) -> Response:
        path, _root = self._dir(m["p"])
        entries = self._children(path)
        size = opt_int(request.query, "page_size") or self.page_size
        if size < 0:
            raise invalid("page_size must be positive")
        size = min(size, self.page_size)
        if "page_token" in request.query:
            after = decode_token("dir", request.query["page_token"])
            entries = [e for e in entries if str(e["name"]) > after]
        page, rest = entries[:size], entries[size:]
        out: dict[str, Any] = {"contents": page} if page else {}
        if rest:
            out["next_page_token"] = encode_token("dir", str(page[-1]["name"]))
        return json_response(out)

    def _dirs_delete(self, request: Request, m: re.Match[str]) -> Response:
        path, root = self._dir(m["p"])
        if path == root:
            raise invalid(f"{path} is the root of a volume; delete the volume instead")
        if self._children(path):
            raise ApiError(409, "DIRECTORY_NOT_EMPTY", f"The directory {path} is not empty.")
        self.dirs.discard(path)
        return Response(204)

    # ------------------------------------------------------------ presigned downloads

    def _create_download_url(self, request: Request, _: re.Match[str]) -> Response:
        if not self.presigned_urls:
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "Presigned URLs are not enabled for this workspace.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "FILES_API_API_IS_NOT_ENABLED",
                        "domain": "filesystem.databricks.com",
                    }
                ],
            )
        path, _found = self._file(required(request.query, "path"))
        token = secrets.token_urlsafe(16)
        self._presigned[token] = path
        return json_response({"url": f"{request.host}/_double/presigned/{token}", "headers": []})

    def _presigned_get(self, request: Request, m: re.Match[str]) -> Response:
        path = self._presigned.get(m["token"])
        found = None if path is None else self.files.get(path)
        if found is None:
            xml = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            return Response(403, xml, {"Content-Type": "application/xml"})
        return self._file_response(request, found)
