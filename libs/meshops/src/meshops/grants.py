"""Unity Catalog grants from each `domain.yml`: planned with the jobs, applied on deploy.

What a deployment plans (`build`), for the catalogs and schemas its flows write:
- the domain's `owners_group` owns them;
- each of its `readers` groups gets `USE_CATALOG` on the catalog and `USE_SCHEMA`, `SELECT`
  on the published schemas: the schemas the flows write in that env (a flow's schema, its
  pipeline's target schema);
- the identity the jobs and pipelines run as, when the plan names one (`run_as`: the
  `prod_run_as` service principal), gets `USE_CATALOG` and, on the schemas it writes,
  `USE_SCHEMA`, `SELECT`, `MODIFY`, `CREATE_TABLE` (and `CREATE_MATERIALIZED_VIEW` for a
  pipeline, `CREATE_MODEL` for an ML flow). The deployer itself needs nothing here: in the
  other envs jobs run as the deployer, who owns or manages what it deploys.

A catalog is shared by every env whose catalog template gives the same name (here all of
them): only prod manages such a catalog, so a dev deployment never changes what prod
granted. Schemas are per deployment: each manages its own.

Applying (`apply`) is the jobs' rule: read what is there (the securable, for its owner; its
grants, paged) and write only what differs, one grants update per securable with every
change in it and one owner update when the owner differs. An unchanged securable costs no
write.

meshops never revokes what it did not grant. Each deployment keeps a record of what it
granted (securable -> principal -> privileges) in a file next to its deploy lock,
`<artifacts_path>/<deployment>/.meshops/grants.json`, read once and written once per deploy,
under that lock, before any grant is written (a grant whose update then fails is claimed
but not held, and a removal only ever takes what is held). A privilege enters the record
only when meshops adds it: one that was there before meshops planned it is never recorded,
so never removed. A privilege is removed when the record holds it and the plan no longer
does, on a securable the plan still covers: a deploy of some flows (`--flow`, `--changed`)
leaves the grants of the others alone. The record lives in the artifacts folder rather than
on the securable (a property) because the deployer always writes there, while Unity Catalog
lets only a securable's owner change its properties, and the owner is the domain's group.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from databricks.sdk.service import jobs, pipelines
from databricks.sdk.service.catalog import (
    PermissionsChange,
    Privilege,
    PrivilegeAssignment,
    SecurableType,
)

from meshops.errors import InvalidFiles, MeshopsError, Problem
from meshops.identity import Identity
from meshops.plan import JobPlan, PipelinePlan
from meshops.spec import DOMAIN_FILE, Specs
from meshops.targets.base import Target, one_line

RECORD_FILE = ".meshops/grants.json"
READ_CATALOG = frozenset({Privilege.USE_CATALOG})
READ_SCHEMA = frozenset({Privilege.USE_SCHEMA, Privilege.SELECT})
WRITE_SCHEMA = frozenset(
    {Privilege.USE_SCHEMA, Privilege.SELECT, Privilege.MODIFY, Privilege.CREATE_TABLE}
)
PIPELINE_WRITE = frozenset({Privilege.CREATE_MATERIALIZED_VIEW})
MODEL_WRITE = frozenset({Privilege.CREATE_MODEL})
PUBLISHED_COMMENT = "published schema of the {domain} domain; made by meshops deploy"
NO_CATALOG = (
    "catalog {catalog} does not exist: nothing to grant yet (the platform team creates "
    "catalogs; deploy again once it is there)"
)

Privileges = Mapping[str, frozenset[Privilege]]
"""Principal -> privileges."""
Record = dict[str, dict[str, frozenset[Privilege]]]
"""Securable key (`catalog:<name>`, `schema:<catalog.schema>`) -> what meshops granted."""


@dataclass(frozen=True)
class SecurableGrants:
    """The planned owner and privileges of one catalog or schema."""

    securable_type: SecurableType
    full_name: str
    owner: str
    privileges: Mapping[str, frozenset[Privilege]]
    flows: tuple[str, ...]
    """The flows that write it (repo-relative)."""
    create: Mapping[str, str] | None = None
    """A schema: the properties it is created with when missing (a dev schema: the janitor's
    evidence). None: a catalog, never created by meshops (the platform makes catalogs)."""
    comment: str | None = None
    """The comment a missing schema is created with (None: the target's dev schema note)."""

    @property
    def key(self) -> str:
        """Its key in a deployment's record."""
        return f"{self.securable_type.value.lower()}:{self.full_name}"

    @property
    def name(self) -> str:
        return f"{self.securable_type.value.lower()} {self.full_name}"

    def assignments(self) -> list[PrivilegeAssignment]:
        """The planned privileges as the grants API shows them (principals sorted)."""
        return [
            PrivilegeAssignment(principal=p, privileges=_sorted(v))
            for p, v in sorted(self.privileges.items())
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "securable_type": self.securable_type.value,
            "full_name": self.full_name,
            "owner": self.owner,
            "privilege_assignments": [a.as_dict() for a in self.assignments()],
            "flows": list(self.flows),
        }


@dataclass(frozen=True)
class GrantsPlan:
    """Every securable one deployment manages, catalogs first, each once."""

    ident: Identity
    securables: tuple[SecurableGrants, ...]

    def as_json(self) -> list[dict[str, Any]]:
        return [s.as_json() for s in self.securables]

    def record_path(self, artifacts_path: str) -> str:
        """Where this deployment's record of what meshops granted lives."""
        return f"{self.ident.lock_folder(artifacts_path)}/{RECORD_FILE}"


# ---------------------------------------------------------------- planning


@dataclass
class _Building:
    securable_type: SecurableType
    full_name: str
    owner: str
    domain: str
    create: dict[str, str] | None
    comment: str | None
    privileges: dict[str, set[Privilege]] = field(default_factory=dict)
    flows: list[str] = field(default_factory=list)

    def grant(self, principal: str, privileges: Iterable[Privilege]) -> None:
        self.privileges.setdefault(principal, set()).update(privileges)


def build(ident: Identity, plans: Iterable[JobPlan | PipelinePlan], specs: Specs) -> GrantsPlan:
    """The grants of the catalogs and schemas `plans` write (their flows' specs in `specs`).

    Two domains with different owners writing one catalog or schema cannot both own it: the
    naming templates must tell them apart, said with both `domain.yml` files."""
    prod = ident.with_env("prod") if ident.env != "prod" else ident
    found: dict[tuple[SecurableType, str], _Building] = {}
    problems: list[Problem] = []

    def securable(
        kind: SecurableType, name: str, plan: JobPlan | PipelinePlan, *, create: bool
    ) -> _Building:
        domain = specs.domains[plan.flow.domain_rel]
        here = found.get((kind, name))
        if here is None:
            here = found[(kind, name)] = _Building(
                kind,
                name,
                domain.owners_group,
                plan.flow.domain_rel,
                dict(ident.schema_properties() if ident.env == "dev" else {}) if create else None,
                None
                if ident.env == "dev" or not create
                else PUBLISHED_COMMENT.format(domain=plan.flow.domain),
            )
        elif here.owner != domain.owners_group:
            problems.append(
                Problem(
                    f"{plan.flow.domain_rel}/{DOMAIN_FILE}",
                    "owners_group",
                    f"{kind.value.lower()} {name} is written by this domain "
                    f"({domain.owners_group!r}) and by {here.domain} ({here.owner!r}); one "
                    "group owns it: the naming templates in .brickopscfg/config.yml must give "
                    "each domain its own catalogs and schemas",
                )
            )
        if plan.flow.rel not in here.flows:
            here.flows.append(plan.flow.rel)
        return here

    for p in plans:
        spec = specs.flows[p.flow.rel]
        readers = specs.domains[p.flow.domain_rel].readers
        if isinstance(p, PipelinePlan):
            writer = _principal(p.run_as)
            catalog = str(p.settings.catalog)
            schemas = {f"{catalog}.{p.settings.schema}": WRITE_SCHEMA | PIPELINE_WRITE}
        else:
            writer = _principal(p.settings.run_as)
            catalog = p.names.catalog
            extra = MODEL_WRITE if p.flow.kind == "ml" else frozenset()
            writes = spec.definition.notebook_tasks
            schemas = {p.names.schema: WRITE_SCHEMA | extra} if writes else {}
        if ident.env == "prod" or catalog != prod.names_for(p.flow.rel).catalog:
            cat = securable(SecurableType.CATALOG, catalog, p, create=False)
            for reader in readers:
                cat.grant(reader, READ_CATALOG)
            if writer:
                cat.grant(writer, READ_CATALOG)
        for schema, write in schemas.items():
            sch = securable(SecurableType.SCHEMA, schema, p, create=True)
            for reader in readers:
                sch.grant(reader, READ_SCHEMA)
            if writer:
                sch.grant(writer, write)
    if problems:
        raise InvalidFiles(dict.fromkeys(problems))
    ordered = sorted(found.values(), key=lambda b: (b.securable_type.value, b.full_name))
    return GrantsPlan(
        ident,
        tuple(
            SecurableGrants(
                b.securable_type,
                b.full_name,
                b.owner,
                {p: frozenset(v) for p, v in sorted(b.privileges.items())},
                tuple(b.flows),
                b.create,
                b.comment,
            )
            for b in ordered
        ),
    )


def _principal(run_as: jobs.JobRunAs | pipelines.RunAs | None) -> str | None:
    """Who a job or pipeline runs as when it is not the deployer (a service principal is
    named by its application id, as Unity Catalog names it)."""
    if run_as is None:
        return None
    return run_as.service_principal_name or run_as.user_name or None


def _sorted(privileges: Iterable[Privilege]) -> list[Privilege]:
    return sorted(privileges, key=lambda p: p.value)


# ---------------------------------------------------------------- deciding


@dataclass(frozen=True)
class Decision:
    """What one securable needs: its grants changes, a new owner, and the record's entry."""

    grants: SecurableGrants
    changes: tuple[PermissionsChange, ...]
    owner: str | None
    """The owner to set; None: it is the planned one already."""
    recorded: dict[str, frozenset[Privilege]]
    """What meshops' record holds for this securable after the changes."""
    missing: bool = False
    """A schema that is not there yet (created first)."""

    @property
    def needed(self) -> bool:
        return bool(self.changes) or self.owner is not None or self.missing


def decide(
    g: SecurableGrants,
    held: Privileges,
    owner: str | None,
    recorded: Privileges,
    *,
    missing: bool = False,
) -> Decision:
    """The changes that make `held` what `g` plans: add what is planned and missing; remove
    what meshops `recorded` granting, no longer plans, and is still held. The new record
    keeps what meshops granted and still plans, plus what it adds now."""
    changes = []
    kept: dict[str, frozenset[Privilege]] = {}
    for principal in sorted(set(g.privileges) | set(recorded)):
        planned = g.privileges.get(principal, frozenset())
        has = held.get(principal, frozenset())
        add = planned - has
        remove = (recorded.get(principal, frozenset()) - planned) & has
        claim = (recorded.get(principal, frozenset()) & planned) | add
        if claim:
            kept[principal] = claim
        if add or remove:
            changes.append(
                PermissionsChange(
                    principal=principal,
                    add=_sorted(add) or None,
                    remove=_sorted(remove) or None,
                )
            )
    return Decision(g, tuple(changes), None if owner == g.owner else g.owner, kept, missing=missing)


def parse_record(data: bytes | None) -> Record:
    """A deployment's record; nothing recorded when there is none (or it is unreadable: then
    nothing is ever removed, the safe side)."""
    try:
        raw = json.loads(data or b"{}")
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    out: Record = {}
    for key, principals in raw.items():
        if not isinstance(principals, dict):
            continue
        out[str(key)] = {
            str(p): frozenset(Privilege(v) for v in privs if v in Privilege._value2member_map_)
            for p, privs in principals.items()
            if isinstance(privs, list)
        }
    return out


def encode_record(record: Record) -> bytes:
    body = {
        key: {p: [v.value for v in _sorted(privs)] for p, privs in sorted(principals.items())}
        for key, principals in sorted(record.items())
        if principals
    }
    return json.dumps(body, indent=1, sort_keys=True).encode()


# ---------------------------------------------------------------- applying


class GrantAction(StrEnum):
    CREATED = "created"
    """A schema made, then given its owner and grants."""
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    """Its catalog does not exist (yet): nothing there to own or read, nor can the jobs run;
    the platform team creates catalogs, the next deploy grants."""
    FAILED = "failed"
    WOULD_UPDATE = "would update"
    NOT_ATTEMPTED = "not attempted"


@dataclass
class GrantResult:
    """What happened to one securable's owner and grants."""

    securable_type: str
    full_name: str
    action: GrantAction
    changes: list[PermissionsChange] = field(default_factory=list)
    owner: str | None = None
    """The owner set (None: it was the planned one)."""
    reason: str = ""

    @property
    def name(self) -> str:
        return f"{self.securable_type.lower()} {self.full_name}"

    @property
    def failed(self) -> bool:
        return self.action == GrantAction.FAILED

    def describe(self) -> str:
        """The changes in one line: `+group USE_SCHEMA,SELECT; -x MODIFY; owner -> group`."""
        parts = []
        for c in self.changes:
            for sign, privs in (("+", c.add), ("-", c.remove)):
                if privs:
                    parts.append(f"{sign}{c.principal} {','.join(p.value for p in privs)}")
        if self.owner:
            parts.append(f"owner -> {self.owner}")
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "securable_type": self.securable_type,
            "full_name": self.full_name,
            "action": self.action.value,
            "changes": [c.as_dict() for c in self.changes],
            "owner": self.owner,
            "reason": self.reason,
        }


def apply(
    plan: GrantsPlan,
    target: Target,
    *,
    artifacts_path: str,
    dry_run: bool = False,
    max_parallel: int = 8,
    stop: threading.Event | None = None,
) -> list[GrantResult]:
    """Make the target's owners and grants what `plan` says, writing only what differs; one
    result per securable, in plan order. The caller holds the deployment's deploy lock (the
    record is read, then written, here)."""
    if not plan.securables:
        return []
    path = plan.record_path(artifacts_path)
    try:
        record = parse_record(target.read_file(path))
    except Exception as exc:
        reason = f"cannot read the grants record {path}: {one_line(exc)}"
        return [_result(g, GrantAction.FAILED, reason) for g in plan.securables]
    workers = max(1, min(max_parallel, len(plan.securables)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meshops-grants") as pool:
        looked = list(
            pool.map(lambda g: _look(target, g, record.get(g.key, {}), dry_run), plan.securables)
        )
    decisions = [d for d in looked if isinstance(d, Decision)]
    results = [
        d if isinstance(d, GrantResult) else _result(d.grants, GrantAction.UNCHANGED)
        for d in looked
    ]
    if dry_run:
        return [
            _result(d.grants, GrantAction.WOULD_UPDATE, changes=d.changes, owner=d.owner)
            if isinstance(d, Decision) and d.needed
            else results[i]
            for i, d in enumerate(looked)
        ]
    writes = [i for i, d in enumerate(looked) if isinstance(d, Decision) and d.needed]
    if not writes:
        return results
    new = dict(record)
    for d in decisions:
        new[d.grants.key] = d.recorded
    if new != record:
        try:  # before any grant: what is granted is always recorded
            target.upload(path, encode_record(new))
        except Exception as exc:
            reason = f"cannot write the grants record {path}: {one_line(exc)}; nothing granted"
            for i in writes:
                results[i] = _result(plan.securables[i], GrantAction.FAILED, reason)
            return results
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meshops-grants") as pool:
        futures = {
            i: pool.submit(_write, target, looked[i], stop)  # type: ignore[arg-type]
            for i in writes
        }
        for i, future in futures.items():
            results[i] = future.result()
    return results


def _result(
    g: SecurableGrants,
    action: GrantAction,
    reason: str = "",
    *,
    changes: Sequence[PermissionsChange] = (),
    owner: str | None = None,
) -> GrantResult:
    return GrantResult(g.securable_type.value, g.full_name, action, list(changes), owner, reason)


def _look(
    target: Target, g: SecurableGrants, recorded: Privileges, dry_run: bool
) -> Decision | GrantResult:
    """The decision for one securable from what the target has (a missing schema is made
    first, unless `dry_run`)."""
    try:
        info = target.securable(g.securable_type, g.full_name)
        if info is None and g.create is None:
            return _result(g, GrantAction.SKIPPED, NO_CATALOG.format(catalog=g.full_name))
        if info is None:
            catalog = g.full_name.split(".", 1)[0]
            if target.securable(SecurableType.CATALOG, catalog) is None:
                return _result(g, GrantAction.SKIPPED, NO_CATALOG.format(catalog=catalog))
            if dry_run:
                return decide(g, {}, None, recorded, missing=True)
            target.ensure_schema(g.full_name, g.create or {}, comment=g.comment)
            info = target.securable(g.securable_type, g.full_name)
            if info is None:
                return _result(g, GrantAction.FAILED, "the schema could not be created")
            return decide(
                g,
                target.privileges(g.securable_type, g.full_name),
                info.owner,
                recorded,
                missing=True,
            )
        held = target.privileges(g.securable_type, g.full_name)
        return decide(g, held, info.owner, recorded)
    except MeshopsError as exc:
        return _result(g, GrantAction.FAILED, str(exc))
    except Exception as exc:
        return _result(g, GrantAction.FAILED, one_line(exc))


def _write(target: Target, d: Decision, stop: threading.Event | None) -> GrantResult:
    """Grants first, then the owner: the deployer may no longer manage a securable it gave
    away."""
    g = d.grants
    action = GrantAction.CREATED if d.missing else GrantAction.UPDATED
    if stop is not None and stop.is_set():
        return _result(g, GrantAction.NOT_ATTEMPTED, changes=d.changes, owner=d.owner)
    try:
        if d.changes:
            target.update_privileges(g.securable_type, g.full_name, d.changes)
        if d.owner is not None:
            target.set_owner(g.securable_type, g.full_name, d.owner)
    except Exception as exc:
        return _result(g, GrantAction.FAILED, one_line(exc), changes=d.changes, owner=d.owner)
    return _result(g, action, changes=d.changes, owner=d.owner)
