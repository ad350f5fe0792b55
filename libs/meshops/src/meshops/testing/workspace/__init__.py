"""A Databricks workspace double served on 127.0.0.1 for the real databricks-sdk.

Tests of deploy code must not fake the SDK: payload shapes, auth, paging and
retries are where deployments break. So the fake sits at the network edge: an
HTTP server that answers the REST paths the SDK calls (jobs 2.2, permissions,
SCIM Me, Unity Catalog, Files API, workspace objects) from in-memory state,
with Databricks-style errors, fault injection and a request log that never
keeps credentials.

    with WorkspaceDouble() as ws:
        w = ws.client()
        job_id = w.jobs.create(name="x").job_id
        assert ws.request_log.count("POST", "/api/2.2/jobs/create") == 1

One module per API (`identity`, `jobs`, `permissions`, `catalog`, `files`,
`objects`, `pipelines`, `grants`), each a part that owns that API's state and
routes; `server` composes them behind `WorkspaceDouble`. Test support only: this
package is left out of meshops' wheel and is importable from the editable (dev)
install.
"""

from meshops.testing.workspace.clock import FastClock
from meshops.testing.workspace.faults import CHAOS_MODES, Fault
from meshops.testing.workspace.log import RecordedRequest, RequestLog
from meshops.testing.workspace.server import WorkspaceDouble

__all__ = [
    "CHAOS_MODES",
    "FastClock",
    "Fault",
    "RecordedRequest",
    "RequestLog",
    "WorkspaceDouble",
]
