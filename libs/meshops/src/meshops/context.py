"""Who, where and what: user, branch, commit, tag, env and repo root.

Facts come from, in order: explicit overrides (CLI flags), `MESHOPS_*` variables,
CI variables (GitHub Actions), the git checkout, or a Databricks notebook. The
result is one immutable `Context` that is passed down explicitly.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import subprocess
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal, cast, get_args

from meshops.errors import InvalidInput, MeshopsError

Env = Literal["local", "dev", "staging", "prod"]
ENVS: tuple[str, ...] = get_args(Env)
_VERSION = r"v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
SEMVER_TAG = re.compile(rf"^{_VERSION}$")
"""A release of the whole repository: every flow."""
DOMAIN_TAG = re.compile(rf"^(?P<domain>[a-z][a-z0-9_]*)/(?P<version>{_VERSION})$")
"""A release of one domain (`transport/v1.4.0`): only that domain's flows."""
CANDIDATE_TAG = re.compile(rf"^{_VERSION}-rc\.(0|[1-9]\d*)$")
"""A release candidate (`v1.4.0-rc.1`): deployed to staging, never to prod."""

# letters NFKD does not decompose to ASCII
_FOLD = str.maketrans({"æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "ß": "ss", "đ": "d", "ł": "l"})


@dataclass(frozen=True)
class Context:
    """Everything a name, plan or run depends on besides the files themselves."""

    repo_root: Path
    env: Env
    user: str
    branch: str
    commit: str
    tag: str | None
    git_url: str
    origin: str = "git"

    def __post_init__(self) -> None:
        # however a Context is made (detect, a job's parameters, a test), no credential rides
        object.__setattr__(self, "git_url", strip_userinfo(self.git_url))

    @property
    def is_release(self) -> bool:
        """The tag is a release: of the repository (`vX.Y.Z`) or of one domain."""
        return self.tag is not None and (
            SEMVER_TAG.match(self.tag) is not None or DOMAIN_TAG.match(self.tag) is not None
        )

    @property
    def release_domain(self) -> str | None:
        """The domain a domain release tag (`transport/v1.4.0`) releases; None otherwise."""
        found = DOMAIN_TAG.match(self.tag or "")
        return found["domain"] if found else None

    @property
    def release_version(self) -> str | None:
        """`vX.Y.Z` of a release tag (the domain's version for a domain tag); else None."""
        if self.tag and SEMVER_TAG.match(self.tag):
            return self.tag
        found = DOMAIN_TAG.match(self.tag or "")
        return found["version"] if found else None

    @property
    def is_candidate(self) -> bool:
        """The tag is a release candidate `vX.Y.Z-rc.N` (staging deploys it)."""
        return self.tag is not None and CANDIDATE_TAG.match(self.tag) is not None

    def with_env(self, env: str) -> Context:
        return replace(self, env=check_env(env))


FIELDS = tuple(f.name for f in fields(Context) if f.name not in ("repo_root", "origin"))
"""The facts a MESHOPS_<FIELD> variable or an override may set."""


def slug(text: str, *, max_len: int, keep: str = "") -> str:
    """Lowercase ASCII letters and digits only; longer text is cut and given a hash suffix.

    Deterministic: the same text always gives the same slug, and two long texts that
    share a prefix still differ by their hash.
    """
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD))
    ascii_text = folded.encode("ascii", "ignore").decode().lower()
    clean = re.sub(f"[^a-z0-9{re.escape(keep)}]", "", ascii_text)
    if len(clean) <= max_len and (clean or not text):
        return clean
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return clean[: max_len - len(digest)] + digest


def check_env(env: str) -> Env:
    if env not in ENVS:
        raise InvalidInput(f"env {env!r} is not known; expected one of: {', '.join(ENVS)}")
    return cast(Env, env)


def find_repo_root(start: Path | None = None) -> Path:
    """The nearest folder holding `.brickopscfg/config.yml`, from `start` (cwd) upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".brickopscfg" / "config.yml").is_file():
            return folder
    raise InvalidInput(
        f"no .brickopscfg/config.yml in {here} or above: run meshops inside the monorepo"
    )


def detect(
    repo_root: Path | None = None,
    *,
    env: str | None = None,
    overrides: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    default_git_url: str = "",
    default_env: str = "local",
) -> Context:
    """Build the Context from overrides, MESHOPS_* variables, CI variables and git.

    `env` is an explicit choice (a flag) and wins over MESHOPS_ENV; `default_env` is what a
    command uses when neither is given.
    """
    environ = os.environ if environ is None else environ
    root = (repo_root or find_repo_root()).resolve()
    facts: dict[str, str | None] = dict(env=default_env, git_url=default_git_url)
    origin = "git"
    facts.update(_from_git(root))
    if environ.get("GITHUB_ACTIONS") == "true":
        origin = "ci"
        facts.update({k: v for k, v in _from_github(environ).items() if v is not None})
    for name in FIELDS:  # MESHOPS_USER, MESHOPS_BRANCH, ... MESHOPS_GIT_URL
        value = environ.get(f"MESHOPS_{name.upper()}")
        if value is not None:
            facts[name] = value or None
            origin = "override"
    facts["env"] = facts["env"] or default_env
    if env is not None:
        facts["env"] = env
    elif environ.get("MESHOPS_ENV") and facts["env"] not in ENVS:
        raise InvalidInput(
            f"MESHOPS_ENV={environ['MESHOPS_ENV']!r} is not known; expected one of: "
            f"{', '.join(ENVS)}"
        )
    for name, value in (overrides or {}).items():
        if value is not None:
            facts[name] = value
            origin = "override"
    return build(root, facts, origin)


def build(root: Path, facts: Mapping[str, str | None], origin: str) -> Context:
    commit = facts.get("commit") or ""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        shown = commit or "nothing"
        raise InvalidInput(
            f"git commit is {shown!r}; expected a hex commit hash: commit your work "
            "or set MESHOPS_COMMIT"
        )
    tag = facts.get("tag") or None
    return Context(
        repo_root=root,
        env=check_env(facts.get("env") or "local"),
        user=facts.get("user") or _os_user(),
        branch=facts.get("branch") or "",
        commit=commit,
        tag=tag,
        git_url=strip_userinfo(facts.get("git_url") or ""),
        origin=origin,
    )


def _from_github(environ: Mapping[str, str]) -> dict[str, str | None]:
    """GitHub Actions: PRs carry the branch in GITHUB_HEAD_REF; tags in GITHUB_REF_NAME."""
    ref_type = environ.get("GITHUB_REF_TYPE", "branch")
    ref_name = environ.get("GITHUB_REF_NAME")
    branch = environ.get("GITHUB_HEAD_REF") or (ref_name if ref_type == "branch" else None)
    server, repo = environ.get("GITHUB_SERVER_URL"), environ.get("GITHUB_REPOSITORY")
    return dict(
        branch=branch,
        tag=ref_name if ref_type == "tag" else None,
        commit=environ.get("GITHUB_SHA"),
        user=environ.get("GITHUB_ACTOR"),
        git_url=f"{server}/{repo}" if server and repo else None,
    )


def git(root: Path, *args: str, check: bool = True) -> str:
    """Run git in `root`; stdout stripped. A failure with check=True is a MeshopsError."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
        )
    except FileNotFoundError as exc:
        raise MeshopsError("git is not installed: install git and try again") from exc
    if check and proc.returncode != 0:
        raise MeshopsError(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip()}")
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _from_git(root: Path) -> dict[str, str | None]:
    if not (root / ".git").exists():
        return {}
    commit = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    branch = git(root, "symbolic-ref", "--short", "-q", "HEAD", check=False)
    tags = git(root, "tag", "--points-at", "HEAD", check=False).split() if commit else []
    chosen = preferred_tags(tags)
    user = git(root, "config", "user.email", check=False)
    return {
        "commit": commit or None,
        "branch": branch or None,
        "tag": chosen[-1] if chosen else None,
        "user": user or None,
    }


def preferred_tags(tags: list[str]) -> list[str]:
    """The tags HEAD is deployed as, most wanted last: a repository release, else domain
    releases, else release candidates, else any tag (`MESHOPS_TAG` picks another)."""
    for pattern in (SEMVER_TAG, DOMAIN_TAG, CANDIDATE_TAG):
        found = sorted(t for t in tags if pattern.match(t))
        if found:
            return found
    return sorted(tags)


def worktree_is_clean(root: Path) -> bool:
    """No staged, unstaged or untracked (non-ignored) changes."""
    return git(root, "status", "--porcelain") == ""


def uncommitted(root: Path, paths: list[str]) -> list[str]:
    """Which of `paths` (repo-relative files or folders) have uncommitted changes."""
    if not paths:
        return []
    out = git(root, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    # "XY path" (git strips the first line's leading blank), "R  old -> new" for a rename
    lines = [line.split(maxsplit=1) for line in out.splitlines() if line.strip()]
    return sorted({parts[1].split(" -> ")[-1] for parts in lines if len(parts) == 2})


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^/?#]*)@")


def strip_userinfo(url: str) -> str:
    """A URL without its user info: `git+https://user:token@host/x` -> `git+https://host/x`.

    The one place credentials embedded in URLs are removed: git URLs (context, plan, config)
    and workspace hosts (DATABRICKS_HOST) before they are stored or printed. Any scheme
    (`https`, `git+https`, ...); a password holding `@` goes too. Only a bare ssh user name
    (`ssh://git@host/...`, no password) is kept: it is how ssh URLs name the account.
    """

    def keep_ssh_user(m: re.Match[str]) -> str:
        scheme, info = m["scheme"], m["info"]
        if scheme.lower().startswith("ssh") and ":" not in info:
            return m[0]
        return scheme

    return _USERINFO.sub(keep_ssh_user, url.strip())
