"""The explorer at 15,000 nodes: ingest a generated manifest (bench/lineage_manifest.py), open
/lineage/<project>/explore/ in Debian's chromium (Playwright, software WebGL) and time it.

    .venv/bin/python bench/explorer.py [--nodes 15000] [--selections 5]

Prints the graph JSON's size and build time, the time to interactive (navigation start to the
graph drawn and the selector box answering): folders clustered (the default above 2,000 nodes;
first open, which lays the snapshot out and stores it, a second, cached, and a third as another
process makes it, reading the stored layout) and every node drawn (?clusters=off); then, last,
the selection highlight time of a few selectors over every node (Enter to the highlighted frame;
the first also builds the snapshot's selection manifest on the server, once per process).
Chromium here draws WebGL in software (SwiftShader), so the frame times are a slow machine's.
Runs in its own throw-away database (test_explorer_bench).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transformation_portal.settings")
os.environ.setdefault("TEST_DATABASE_NAME", "test_explorer_bench")
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from bench.lineage_manifest import PROJECT, generate_manifest  # noqa: E402

PAINTED = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"


def _open(page, url: str) -> float:
    page.goto(url)
    page.wait_for_selector("[data-testid=explorer-canvas][data-ready='1']", timeout=300_000)
    page.evaluate(PAINTED)
    return float(page.get_by_test_id("explorer-canvas").get_attribute("data-ready-ms") or "nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=15000)
    parser.add_argument("--selections", type=int, default=5)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")

    import django

    from transformation_portal.bootstrap import bootstrap

    bootstrap()  # the embedded PostgreSQL, when DATABASE_URL is not set
    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.db import connection
    from django.test import Client
    from django.test.testcases import LiveServerThread
    from django.test.utils import setup_test_environment
    from playwright.sync_api import sync_playwright

    from lineage.explorer import explorer_graph
    from lineage.models import ExplorerLayout, Node
    from lineage.services import ingest_manifest
    from tests.e2e.conftest import CHROMIUM_ARGS

    setup_test_environment()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    server = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "manifest.json"
            path.write_text(json.dumps(generate_manifest(args.nodes)))
            snapshot = ingest_manifest(PROJECT, path, actor="bench")
        start = time.perf_counter()
        graph = explorer_graph(snapshot.pk)
        build = time.perf_counter() - start
        # The first page load lays it out again, as the first process to open a snapshot does.
        ExplorerLayout.objects.filter(snapshot=snapshot).delete()
        explorer_graph.cache_clear()
        print(
            f"{snapshot.node_count} nodes: graph JSON {len(graph.body) / 1e6:.1f} MB "
            f"({len(graph.gzipped) / 1e6:.2f} MB gzipped), built in {build:.2f} s"
        )
        user = User.objects.create_user("bench_viewer", password="unused-bench-password")  # noqa: S106
        user.groups.add(Group.objects.get(name="viewer"))
        client = Client()
        client.force_login(user)
        server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        if server.error:
            raise server.error
        base = f"http://127.0.0.1:{server.port}"
        names = list(
            Node.objects.filter(snapshot=snapshot, resource_type="model", name__startswith="int_")
            .order_by("name")
            .values_list("name", flat=True)
        )
        selectors = [f"+{names[len(names) * (i + 1) // (args.selections + 1)]}+" for i in range(args.selections)]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
            context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": base}])
            page = context.new_page()
            url = f"{base}/lineage/{PROJECT}/explore/"
            first = _open(page, url)  # clustered by folder: above 2,000 nodes
            clusters = page.get_by_test_id("explorer-canvas").get_attribute("data-drawn")
            second = _open(page, url)
            explorer_graph.cache_clear()  # as another web process opens it: the stored layout
            other = _open(page, url)
            full = _open(page, f"{url}?clusters=off")  # every node drawn
            canvas = page.get_by_test_id("explorer-canvas")
            drawn = canvas.get_attribute("data-drawn")
            box = page.get_by_test_id("explorer-select")
            timings = []
            for selector in selectors:
                box.fill(selector)
                begun = time.perf_counter()
                box.press("Enter")
                page.wait_for_function(
                    "(text) => document.querySelector('.explorer-canvas').dataset.selected === text", arg=selector
                )
                wall = (time.perf_counter() - begun) * 1000
                timings.append(float(canvas.get_attribute("data-painted-ms") or "nan"))
                print(
                    f"  {selector}: {canvas.get_attribute('data-highlighted')} highlighted, "
                    f"on screen in {timings[-1]:.0f} ms "
                    f"(select API {canvas.get_attribute('data-request-ms')} ms, "
                    f"highlight drawn at {canvas.get_attribute('data-select-ms')} ms; "
                    f"{wall:.0f} ms as Playwright waits)"
                )
            browser.close()
        print(
            f"opened clustered ({clusters} folders drawn): {first:.0f} ms first (lays out), {second:.0f} ms cached, "
            f"{other:.0f} ms in another process (reads the stored layout)"
        )
        print(f"every node drawn (?clusters=off, {drawn} nodes): {full:.0f} ms")
        print(
            f"RESULT time to interactive {first:.0f} ms (first open, clustered), {full:.0f} ms (all {drawn} nodes); "
            f"selection highlight over all nodes median {statistics.median(timings):.0f} ms, max {max(timings):.0f} ms"
        )
    finally:
        if server is not None:
            server.terminate()
        connection.close()
        connection.creation.destroy_test_db(test_db, verbosity=0)


if __name__ == "__main__":
    main()
