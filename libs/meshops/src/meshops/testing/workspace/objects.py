"""Workspace API 2.0: workspace objects (directories, notebooks, files) by path.

Imports come as JSON (base64 content) or multipart form data, as the SDK sends either.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import posixpath
import re
from dataclasses import dataclass
from email.parser import BytesParser
from typing import Any, Literal

from meshops.testing.workspace.common import (
    ApiError,
    ApiPart,
    Request,
    Response,
    Route,
    WorkspaceState,
    flag,
    invalid,
    json_response,
    now_ms,
    required,
)


@dataclass
class WsObject:
    object_type: Literal["DIRECTORY", "NOTEBOOK", "FILE"]
    object_id: int
    created_at: int
    modified_at: int
    language: str | None = None
    content: bytes = b""


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    form: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            form[name] = payload
    return form


class WorkspaceObjectsApi(ApiPart):
    def __init__(self, state: WorkspaceState) -> None:
        self.state = state
        now = now_ms()
        self.objects: dict[str, WsObject] = {
            p: WsObject("DIRECTORY", state.next_id(), now, now)
            for p in ("/", "/Users", f"/Users/{state.user_name}", "/Shared")
        }

    def routes(self) -> list[Route]:
        ws = r"/api/2\.0/workspace"
        return [
            ("POST", f"{ws}/mkdirs", self._ws_mkdirs),
            ("POST", f"{ws}/import", self._ws_import),
            ("GET", f"{ws}/get-status", self._ws_status),
            ("GET", f"{ws}/list", self._ws_list),
            ("GET", f"{ws}/export", self._ws_export),
            ("POST", f"{ws}/delete", self._ws_delete),
        ]

    def _ws_object(self, path: str) -> WsObject:
        found = self.objects.get(path)
        if found is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")
        return found

    @staticmethod
    def _ws_info(path: str, obj: WsObject) -> dict[str, Any]:
        info: dict[str, Any] = {
            "path": path,
            "object_type": obj.object_type,
            "object_id": obj.object_id,
            "created_at": obj.created_at,
            "modified_at": obj.modified_at,
        }
        if obj.language:
            info["language"] = obj.language
        if obj.object_type != "DIRECTORY":
            info["size"] = len(obj.content)
        return info

    @staticmethod
    def _ws_path(raw: Any) -> str:
        if not isinstance(raw, str) or not raw.startswith("/"):
            raise invalid(f"Path ({raw}) must be an absolute path")
        return posixpath.normpath(raw)

    def _ws_mkdirs(self, request: Request, _: re.Match[str]) -> Response:
        path = self._ws_path(required(request.json(), "path"))
        self._ws_mkdirs_path(path)
        return json_response({})

    def _ws_mkdirs_path(self, path: str) -> None:
        missing = []
        current = path
        while current not in self.objects:
            missing.append(current)
            current = posixpath.dirname(current)
        if self.objects[current].object_type != "DIRECTORY":
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({current}) already exists.")
        now = now_ms()
        for p in reversed(missing):
            self.objects[p] = WsObject("DIRECTORY", self.state.next_id(), now, now)

    def _ws_import(self, request: Request, _: re.Match[str]) -> Response:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = _multipart(ctype, request.body)
            path_raw: Any = form.get("path", b"").decode()
            content = form.get("content", b"")
            fmt = form.get("format", b"SOURCE").decode()
            language = form["language"].decode() if "language" in form else None
            overwrite = flag(form.get("overwrite", b"false").decode())
        else:
            body = request.json()
            path_raw = body.get("path")
            try:
                content = base64.b64decode(body.get("content") or "", validate=True)
            except (binascii.Error, ValueError) as err:
                raise invalid("content must be base64-encoded") from err
            fmt = body.get("format") or "SOURCE"
            language = body.get("language")
            overwrite = flag(body.get("overwrite", False))
        path = self._ws_path(path_raw)
        parent = self.objects.get(posixpath.dirname(path))
        if parent is None or parent.object_type != "DIRECTORY":
            raise ApiError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"The parent folder ({posixpath.dirname(path)}) does not exist.",
            )
        existing = self.objects.get(path)
        if existing is not None and (not overwrite or existing.object_type == "DIRECTORY"):
            raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")
        is_notebook = (fmt == "SOURCE" and language is not None) or (
            fmt == "AUTO"
            and content.lstrip().split(b"\n", 1)[0].endswith(b"Databricks notebook source")
        )
        if fmt not in ("SOURCE", "AUTO", "RAW"):
            raise invalid(f"Import format {fmt} is not supported by the workspace double")
        if fmt == "SOURCE" and language is None:
            raise invalid(
                "The language field is required when importing a notebook in SOURCE format"
            )
        now = now_ms()
        self.objects[path] = WsObject(
            "NOTEBOOK" if is_notebook else "FILE",
            existing.object_id if existing else self.state.next_id(),
            existing.created_at if existing else now,
            now,
            language=(language or "PYTHON") if is_notebook else None,
            content=content,
        )
        return json_response({})

    def _ws_status(self, request: Request, _: re.Match[str]) -> Response:
        path = self._ws_path(required(request.query, "path"))
        return json_response(self._ws_info(path, self._ws_object(path)))

    def _ws_list(self, request: Request, _: re.Match[str]) -> Response:
        path = self._ws_path(required(request.query, "path"))
        obj = self._ws_object(path)
        if obj.object_type != "DIRECTORY":
            return json_response({"objects": [self._ws_info(path, obj)]})
        children = [
            self._ws_info(p, o)
            for p, o in sorted(self.objects.items())
            if p != path and posixpath.dirname(p) == path
        ]
        return json_response({"objects": children} if children else {})

    def _ws_export(self, request: Request, _: re.Match[str]) -> Response:
        path = self._ws_path(required(request.query, "path"))
        obj = self._ws_object(path)
        if obj.object_type == "DIRECTORY":
            raise invalid(f"Exporting the folder {path} is not supported by the workspace double")
        fmt = request.query.get("format", "SOURCE")
        if fmt not in ("SOURCE", "AUTO", "RAW"):
            raise invalid(f"Export format {fmt} is not supported by the workspace double")
        if flag(request.query.get("direct_download", "false")):
            return Response(200, obj.content, {"Content-Type": "application/octet-stream"})
        return json_response(
            {
                "content": base64.b64encode(obj.content).decode(),
                "file_type": "py" if obj.language else "",
            }
        )

    def _ws_delete(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        path = self._ws_path(required(body, "path"))
        obj = self._ws_object(path)
        below = [p for p in self.objects if p.startswith(path.rstrip("/") + "/")]
        if path == "/":
            raise invalid("The workspace root cannot be deleted")
        if obj.object_type == "DIRECTORY" and below and not flag(body.get("recursive", False)):
            raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({path}) is not empty.")
        for p in [*below, path]:
            del self.objects[p]
        return json_response({})
