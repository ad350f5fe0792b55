"""The mesh portal: a static site built from the mesh's files, its run records and its MLflow
registry, checked as a static file tree and in a real headless Chromium (Debian's package,
driven by Playwright): every page loads without console errors, the lineage SVG renders with
the cross-domain edge, every internal link resolves; screenshots are saved."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from meshops import identity, portal
from meshops.engine.runs import RunStore
from meshops.errors import MeshopsError
from meshops.testing.mesh import FlowDef

REVENUE = FlowDef(name="revenue")
SHARE = FlowDef(domain="finance", project="reporting", name="revenue_share")
MODEL = FlowDef(kind="ml", name="taximodel")
PER_INHABITANT = "acme_transport_taxinyc.revenue.revenue_per_inhabitant"
BY_BOROUGH_ID = "transport.taxinyc.revenue_by_borough"

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE = "MESHOPS_REQUIRE_BROWSER"
SCREENSHOTS = "MESHOPS_SCREENSHOTS"


def register_model(pm: Any) -> str:
    """Two versions of the ML flow's model in the state's registry, v2 the champion."""
    from mlflow.tracking import MlflowClient

    schema = identity.of(pm.ctx).names_for(MODEL.rel).schema
    name = f"{schema}.taxinyc_taximodel"
    uri = f"sqlite:///{pm.state.mlflow_db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=str(pm.state.root / "model"))
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "challenger", "1")
    return name


def add_breaking_run(pm: Any) -> None:
    """A newer run of transport's flow whose contract check failed for revenue_by_borough."""
    first = pm.runs[0]
    error = (
        f"data contract of {BY_BOROUGH_ID} broken (total_revenue: dropped); consumers "
        "affected: none declared. Restore the column(s), or change products.yml"
    )
    tasks = [replace(first.tasks[0], status="FAILED", error=error)]
    run = replace(
        first,
        run_id="20990101-000000-breaks",
        started=first.started + 30,
        ended=first.started + 31,
        status="FAILED",
        tasks=tasks,
    )
    RunStore(pm.state.runs_db).save(run)


@pytest.fixture
def site(product_mesh: Any, tmp_path: Path) -> portal.Site:
    register_model(product_mesh)
    add_breaking_run(product_mesh)
    return portal.build(product_mesh.ctx, product_mesh.mesh, product_mesh.state, tmp_path / "site")


def page(site: portal.Site, name: str) -> str:
    return (site.folder / name).read_text(encoding="utf-8")


@pytest.mark.unit
def test_the_site_shows_domains_products_runs_and_models(site: portal.Site) -> None:
    names = sorted(p.relative_to(site.folder).as_posix() for p in site.pages)
    assert names == [
        "flows/acme-finance-reporting-prep-revenue_share.html",
        "flows/acme-transport-taxinyc-ml-taximodel.html",
        "flows/acme-transport-taxinyc-prep-revenue.html",
        "index.html",
        "lineage.html",
        "models.html",
        "products.html",
        "runs.html",
    ]
    index = page(site, "index.html")
    assert "finance-owners" in index and "transport-owners" in index
    products = page(site, "products.html")
    # the newest build of revenue_by_borough broke its contract; revenue_per_inhabitant's is ok
    assert '<span class="status breaking">breaking</span> data contract of ' + BY_BOROUGH_ID in (
        products
    )
    assert '<span class="status ok">ok</span> as built by run' in products
    assert "<code>revenue_per_inhabitant</code></td><td><code>double</code>" in products
    assert "<tr><th>freshness</th><td>1d</td></tr>" in products
    assert f'<a href="{portal.page_of(SHARE.rel)}">{SHARE.rel}</a>' in products  # a consumer
    runs = page(site, "runs.html")
    assert "7.2 s" in runs and "(5)" in runs  # a duration and a row count
    models = page(site, "models.html")
    assert '<td class="champion">version 2</td>' in models and "challenger: 1" in models
    flow = page(site, portal.page_of(REVENUE.rel))
    assert 'data-id="revenue_per_inhabitant"' in flow  # the task DAG
    assert 'data-source="revenue_by_borough" data-target="revenue_per_inhabitant"' in flow


@pytest.mark.unit
def test_a_folder_with_other_files_is_never_emptied(product_mesh: Any, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(MeshopsError, match="has files and no .meshops-portal"):
        portal.build(product_mesh.ctx, product_mesh.mesh, product_mesh.state, mine)
    assert (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(MeshopsError, match="a file, not a folder"):
        portal.build(product_mesh.ctx, product_mesh.mesh, product_mesh.state, mine / "notes.txt")


# ------------------------------------------------------------------------ in a browser


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium: installed by tools/browser.py when missing (as `nox -s tests` does);
    the test skips when it cannot be, unless MESHOPS_REQUIRE_BROWSER is set."""
    if not CHROMIUM.is_file():
        tool = Path(__file__).resolve().parents[4] / "tools" / "browser.py"
        subprocess.run([sys.executable, str(tool)], check=False)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed (the dev dependency group has it)"
    else:
        missing = "" if CHROMIUM.is_file() else f"{CHROMIUM} missing and could not be installed"
    if missing:
        if os.environ.get(REQUIRE):
            pytest.fail(f"{REQUIRE} is set: {missing}")
        pytest.skip(missing)
    return CHROMIUM


@pytest.fixture
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium), args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


IDS = "() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)"
LINKS = """() => Array.from(document.querySelectorAll('a')).map(
    a => new URL(a.getAttribute('href'), document.baseURI).href)"""


@pytest.mark.integration
def test_every_page_loads_renders_and_links_in_chromium(
    site: portal.Site, browser: Any, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    tab = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    tab.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    links: dict[str, set[str]] = {}
    ids: dict[Path, set[str]] = {}
    for path in site.pages:
        rel = path.relative_to(site.folder).as_posix()
        response = tab.goto(path.as_uri())
        assert response is None or response.ok, rel
        assert tab.title().endswith("mesh portal"), rel
        links[rel] = set(tab.evaluate(LINKS))
        ids[path.resolve()] = set(tab.evaluate(IDS))
        tab.screenshot(path=str(shots / (rel.replace("/", "__") + ".png")), full_page=True)
        if rel == "lineage.html":
            graph = tab.locator("#lineage-graph svg")
            assert graph.is_visible()
            box = graph.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
            node = tab.locator(f'svg g.node[data-id="{PER_INHABITANT}"]')
            assert node.is_visible()
            assert "transport.taxinyc.revenue_per_inhabitant" in node.text_content()
            edge = tab.locator(
                f'svg path.edge[data-source="{PER_INHABITANT}"][data-target="{SHARE.rel}"]'
            )
            # drawn: a path with a length, from transport's product to finance's flow
            assert edge.evaluate("e => e.getTotalLength()") > 10
            assert "finance" in tab.locator("#cross-domain").inner_text()
    assert problems == []
    pages = {p.resolve() for p in site.pages}
    for rel, found in links.items():
        for url in found:
            parts = urlsplit(url)
            assert parts.scheme == "file", f"{rel} links outside the site: {url}"
            target = Path(unquote(parts.path)).resolve()
            assert target in pages, f"{rel}: broken link {url}"
            anchor = unquote(parts.fragment)
            assert not anchor or anchor in ids[target], f"{rel}: {url} has no element #{anchor}"
    assert problems == []
    assert len(list(shots.glob("*.png"))) == len(site.pages)
    wanted = os.environ.get(SCREENSHOTS)
    if wanted:
        shutil.copytree(shots, Path(wanted), dirs_exist_ok=True)
