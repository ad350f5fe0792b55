"""Unity Catalog API 2.1: catalogs, schemas, tables and volumes, with Unity Catalog paging.

Dropping a volume (or a schema with `force`) drops its files too: this part tells the files
API, which asks back only whether a volume exists.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from meshops.errors import MeshopsError
from meshops.testing.workspace.common import (
    ApiError,
    ApiPart,
    Request,
    Response,
    Route,
    WorkspaceState,
    decode_token,
    encode_token,
    flag,
    invalid,
    json_response,
    now_ms,
    opt_int,
    required,
)
from meshops.testing.workspace.files import FilesApi


def _uc_page(
    items: list[dict[str, Any]],
    key: str,
    query: Mapping[str, str],
    list_key: str,
    server_page_size: int,
) -> dict[str, Any]:
    """Unity Catalog paging: no max_results = everything, 0 = server page size, >0 = min."""
    max_results = opt_int(query, "max_results")
    if max_results is not None and max_results < 0:
        raise invalid("max_results must be greater than or equal to 0")
    items = sorted(items, key=lambda i: str(i[key]))
    if "page_token" in query:
        after = decode_token(list_key, query["page_token"])
        items = [i for i in items if str(i[key]) > after]
    if max_results is None:
        return {list_key: items} if items else {}
    size = server_page_size if max_results == 0 else min(max_results, server_page_size)
    page, rest = items[:size], items[size:]
    out: dict[str, Any] = {list_key: page} if page else {}
    if rest:
        out["next_page_token"] = encode_token(list_key, str(page[-1][key]))
    return out


class CatalogApi(ApiPart):
    def __init__(self, state: WorkspaceState, files: FilesApi, *, page_size: int) -> None:
        self.state = state
        self.files = files
        self.page_size = page_size
        self.metastore_id = str(uuid.uuid4())
        self.catalogs: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self.tables: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[Route]:
        uc = r"/api/2\.1/unity-catalog"
        return [
            ("GET", f"{uc}/catalogs", self._catalogs_list),
            ("GET", f"{uc}/catalogs/(?P<name>[^/]+)", self._catalogs_get),
            ("GET", f"{uc}/schemas", self._schemas_list),
            ("POST", f"{uc}/schemas", self._schemas_create),
            ("GET", f"{uc}/schemas/(?P<name>[^/]+)", self._schemas_get),
            ("DELETE", f"{uc}/schemas/(?P<name>[^/]+)", self._schemas_delete),
            ("GET", f"{uc}/tables", self._tables_list),
            ("GET", f"{uc}/tables/(?P<name>[^/]+)/exists", self._tables_exists),
            ("GET", f"{uc}/tables/(?P<name>[^/]+)", self._tables_get),
            ("DELETE", f"{uc}/tables/(?P<name>[^/]+)", self._tables_delete),
            ("GET", f"{uc}/volumes", self._volumes_list),
            ("POST", f"{uc}/volumes", self._volumes_create),
            ("GET", f"{uc}/volumes/(?P<name>[^/]+)", self._volumes_get),
            ("DELETE", f"{uc}/volumes/(?P<name>[^/]+)", self._volumes_delete),
        ]

    def has_volume(self, full_name: str) -> bool:
        return full_name in self.volumes

    # ------------------------------------------------------------ seeding

    def add_table(
        self,
        catalog: str,
        schema: str,
        name: str,
        *,
        columns: Sequence[tuple[str, str]],
        table_type: str,
        data_source_format: str,
        properties: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        """Seed a table (its schema and catalog are created when missing)."""
        self.ensure_catalog(catalog, None)
        full_schema = f"{catalog}.{schema}".lower()
        if full_schema not in self.schemas:
            self.create_schema(catalog, schema, None, {})
        full = f"{full_schema}.{name.lower()}"
        if full in self.tables:
            raise MeshopsError(f"table {full} is already seeded in the workspace double")
        now = now_ms()
        user_name = self.state.user_name
        info = {
            "name": name.lower(),
            "catalog_name": catalog.lower(),
            "schema_name": schema.lower(),
            "full_name": full,
            "table_type": table_type,
            "data_source_format": data_source_format,
            "columns": [
                {
                    "name": c,
                    "type_name": t.upper(),
                    "type_text": t,
                    "position": i,
                    "nullable": True,
                }
                for i, (c, t) in enumerate(columns)
            ],
            "properties": dict(properties or {}),
            "owner": user_name,
            "created_by": user_name,
            "updated_by": user_name,
            "created_at": now,
            "updated_at": now,
            "table_id": str(uuid.uuid4()),
            "metastore_id": self.metastore_id,
            "storage_location": f"s3://double-metastore/tables/{uuid.uuid4()}",
        }
        self.tables[full] = info
        return info

    def add_volume(self, catalog: str, schema: str, name: str, volume_type: str) -> dict[str, Any]:
        """Seed a volume (its schema and catalog are created when missing)."""
        self.ensure_catalog(catalog, None)
        if f"{catalog}.{schema}".lower() not in self.schemas:
            self.create_schema(catalog, schema, None, {})
        return self.create_volume(catalog, schema, name, volume_type)

    def ensure_catalog(self, name: str, comment: str | None) -> dict[str, Any]:
        key = name.lower()
        if key not in self.catalogs:
            now = now_ms()
            self.catalogs[key] = {
                "name": key,
                "full_name": key,
                "owner": self.state.user_name,
                "comment": comment,
                "catalog_type": "MANAGED_CATALOG",
                "created_at": now,
                "created_by": self.state.user_name,
                "updated_at": now,
                "metastore_id": self.metastore_id,
                "isolation_mode": "OPEN",
            }
        return self.catalogs[key]

    def create_schema(
        self, catalog: str, name: str, comment: str | None, properties: Mapping[str, str]
    ) -> dict[str, Any]:
        full = f"{catalog}.{name}".lower()
        if full in self.schemas:
            raise ApiError(409, "SCHEMA_ALREADY_EXISTS", f"Schema '{full}' already exists")
        now = now_ms()
        user_name = self.state.user_name
        self.schemas[full] = {
            "name": name.lower(),
            "catalog_name": catalog.lower(),
            "full_name": full,
            "owner": user_name,
            "comment": comment,
            "properties": dict(properties),
            "created_at": now,
            "created_by": user_name,
            "updated_at": now,
            "updated_by": user_name,
            "schema_id": str(uuid.uuid4()),
            "metastore_id": self.metastore_id,
            "catalog_type": "MANAGED_CATALOG",
        }
        return self.schemas[full]

    def create_volume(
        self, catalog: str, schema: str, name: str, volume_type: str
    ) -> dict[str, Any]:
        full = f"{catalog}.{schema}.{name}".lower()
        if full in self.volumes:
            raise ApiError(409, "VOLUME_ALREADY_EXISTS", f"Volume '{full}' already exists")
        if volume_type not in ("MANAGED", "EXTERNAL"):
            raise invalid(f"Invalid volume_type {volume_type!r}")
        now = now_ms()
        self.volumes[full] = {
            "name": name.lower(),
            "catalog_name": catalog.lower(),
            "schema_name": schema.lower(),
            "full_name": full,
            "volume_type": volume_type,
            "owner": self.state.user_name,
            "created_at": now,
            "created_by": self.state.user_name,
            "updated_at": now,
            "volume_id": str(uuid.uuid4()),
            "metastore_id": self.metastore_id,
            "storage_location": f"s3://double-metastore/volumes/{uuid.uuid4()}",
        }
        return self.volumes[full]

    # ------------------------------------------------------------ catalogs

    def _catalog(self, name: str) -> dict[str, Any]:
        catalog = self.catalogs.get(name.lower())
        if catalog is None:
            raise ApiError(404, "CATALOG_DOES_NOT_EXIST", f"Catalog '{name}' does not exist.")
        return catalog

    def _catalogs_list(self, request: Request, _: re.Match[str]) -> Response:
        items = list(self.catalogs.values())
        return json_response(_uc_page(items, "name", request.query, "catalogs", self.page_size))

    def _catalogs_get(self, request: Request, m: re.Match[str]) -> Response:
        return json_response(self._catalog(m["name"]))

    # ------------------------------------------------------------ schemas

    def _schema(self, full_name: str) -> dict[str, Any]:
        schema = self.schemas.get(full_name.lower())
        if schema is None:
            raise ApiError(404, "SCHEMA_DOES_NOT_EXIST", f"Schema '{full_name}' does not exist.")
        return schema

    def _schemas_list(self, request: Request, _: re.Match[str]) -> Response:
        catalog = self._catalog(required(request.query, "catalog_name"))["name"]
        items = [s for s in self.schemas.values() if s["catalog_name"] == catalog]
        return json_response(_uc_page(items, "full_name", request.query, "schemas", self.page_size))

    def _schemas_create(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        catalog = self._catalog(required(body, "catalog_name"))["name"]
        schema = self.create_schema(
            catalog, required(body, "name"), body.get("comment"), body.get("properties") or {}
        )
        return json_response(schema)

    def _schemas_get(self, request: Request, m: re.Match[str]) -> Response:
        return json_response(self._schema(m["name"]))

    def _schemas_delete(self, request: Request, m: re.Match[str]) -> Response:
        schema = self._schema(m["name"])
        full = schema["full_name"]
        tables = [
            t
            for t, info in self.tables.items()
            if f"{info['catalog_name']}.{info['schema_name']}" == full
        ]
        volumes = [
            v
            for v, info in self.volumes.items()
            if f"{info['catalog_name']}.{info['schema_name']}" == full
        ]
        if (tables or volumes) and not flag(request.query.get("force", "false")):
            raise ApiError(
                400,
                "SCHEMA_NOT_EMPTY",
                f"Schema '{full}' is not empty. The schema has {len(tables)} tables(s), "
                f"0 functions(s), {len(volumes)} volumes(s)",
            )
        for t in tables:
            del self.tables[t]
        for v in volumes:
            self._drop_volume(v)
        del self.schemas[full]
        return json_response({})

    # ------------------------------------------------------------ tables

    def _tables_list(self, request: Request, _: re.Match[str]) -> Response:
        query = request.query
        self._catalog(required(query, "catalog_name"))
        schema = self._schema(f"{query['catalog_name']}.{required(query, 'schema_name')}")
        omit_columns = flag(query.get("omit_columns", "false"))
        omit_properties = flag(query.get("omit_properties", "false"))
        items = []
        for info in self.tables.values():
            if f"{info['catalog_name']}.{info['schema_name']}" != schema["full_name"]:
                continue
            item = dict(info)
            if omit_columns:
                item.pop("columns")
            if omit_properties:
                item.pop("properties")
            items.append(item)
        return json_response(_uc_page(items, "full_name", query, "tables", self.page_size))

    def _table(self, full_name: str) -> dict[str, Any]:
        table = self.tables.get(full_name.lower())
        if table is None:
            raise ApiError(404, "TABLE_DOES_NOT_EXIST", f"Table '{full_name}' does not exist.")
        return table

    def _tables_get(self, request: Request, m: re.Match[str]) -> Response:
        return json_response(self._table(m["name"]))

    def _tables_exists(self, request: Request, m: re.Match[str]) -> Response:
        return json_response({"table_exists": m["name"].lower() in self.tables})

    def _tables_delete(self, request: Request, m: re.Match[str]) -> Response:
        del self.tables[self._table(m["name"])["full_name"]]
        return json_response({})

    # ------------------------------------------------------------ volumes

    def _volumes_list(self, request: Request, _: re.Match[str]) -> Response:
        query = request.query
        self._catalog(required(query, "catalog_name"))
        schema = self._schema(f"{query['catalog_name']}.{required(query, 'schema_name')}")
        items = [
            v
            for v in self.volumes.values()
            if f"{v['catalog_name']}.{v['schema_name']}" == schema["full_name"]
        ]
        return json_response(_uc_page(items, "full_name", query, "volumes", self.page_size))

    def _volumes_create(self, request: Request, _: re.Match[str]) -> Response:
        body = request.json()
        catalog = required(body, "catalog_name")
        schema = self._schema(f"{catalog}.{required(body, 'schema_name')}")
        info = self.create_volume(
            schema["catalog_name"],
            schema["name"],
            required(body, "name"),
            required(body, "volume_type"),
        )
        return json_response(info)

    def _volume(self, full_name: str) -> dict[str, Any]:
        volume = self.volumes.get(full_name.lower())
        if volume is None:
            raise ApiError(404, "VOLUME_DOES_NOT_EXIST", f"Volume '{full_name}' does not exist.")
        return volume

    def _volumes_get(self, request: Request, m: re.Match[str]) -> Response:
        return json_response(self._volume(m["name"]))

    def _volumes_delete(self, request: Request, m: re.Match[str]) -> Response:
        self._drop_volume(self._volume(m["name"])["full_name"])
        return json_response({})

    def _drop_volume(self, full_name: str) -> None:
        del self.volumes[full_name]
        self.files.drop_volume("/Volumes/" + full_name.replace(".", "/"))
