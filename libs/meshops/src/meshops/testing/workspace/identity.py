"""Who calls and which workspace: host metadata (the SDK's first probe) and SCIM Me."""

from __future__ import annotations

import re
import uuid

from meshops.testing.workspace.common import (
    ApiPart,
    Request,
    Response,
    Route,
    WorkspaceState,
    json_response,
)


class IdentityApi(ApiPart):
    public_paths = ("/.well-known/databricks-config",)

    def __init__(self, state: WorkspaceState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            ("GET", r"/\.well-known/databricks-config", self._host_metadata),
            ("GET", r"/api/2\.0/preview/scim/v2/Me", self._me),
        ]

    def _host_metadata(self, request: Request, _: re.Match[str]) -> Response:
        return json_response(
            {"oidc_endpoint": f"{request.host}/oidc", "workspace_id": str(self.state.workspace_id)}
        )

    def _me(self, request: Request, _: re.Match[str]) -> Response:
        user_name = self.state.user_name
        return json_response(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, user_name).int % 10**15),
                "userName": user_name,
                "displayName": self.state.display_name,
                "active": True,
                "emails": [{"value": user_name, "type": "work", "primary": True}],
                "groups": [{"display": "users", "type": "direct", "value": "users"}],
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            }
        )
