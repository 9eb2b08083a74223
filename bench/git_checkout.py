"""A run's git checkout on a worker host (issue 20): a 5,000-model dbt project's repository
served by git daemon and by smart HTTP (tests/gitservers.py), checked out through
dbtlib.git.GitCache. Figures: a cold clone + checkout (empty cache); the per-run overhead with
a warm cache, (a) the same commit again, (b) a commit pushed since (fetch + materialise), p50
and p95. Budget: warm ≤ 0.3 s. The headline is printed last.

    .venv/bin/python bench/git_checkout.py [runs=20]
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dbtlib.git import GitCache, Remote  # noqa: E402
from tests.gitservers import GitHttpServer, ProjectRepo, git, git_daemon  # noqa: E402

MODELS = 5000
HISTORY = 20  # commits before the measured ones, each touching a few models
BUDGET_S = 0.3


def model_sql(i: int, version: int = 0) -> str:
    if i < 10:
        return f"select {i} as id, {version} as version, 'source {i}' as label\n"
    return (
        f"-- model {i}, version {version}\n"
        f"select id, version, label, {i} as model from {{{{ ref('model_{i // 2:04d}') }}}}\n"
        f"where id >= {i % 7}\n"
    )


def big_repo(root: Path) -> ProjectRepo:
    """The shop repository, grown to MODELS models and HISTORY commits."""
    repo = ProjectRepo(root, "big")
    files: dict[str, str | None] = {f"models/model_{i:04d}.sql": model_sql(i) for i in range(MODELS)}
    for group in range(0, MODELS, 100):
        columns = "    columns:\n      - name: id\n        tests: [not_null]\n"
        models = "".join(f"  - name: model_{i:04d}\n{columns}" for i in range(group, group + 100))
        files[f"models/schema_{group // 100:02d}.yml"] = f"version: 2\nmodels:\n{models}"
    repo.commit(files, f"{MODELS} models")
    for version in range(1, HISTORY):
        repo.commit({f"models/model_{i:04d}.sql": model_sql(i, version) for i in range(version, MODELS, 997)}, "edit")
    return repo


def percentile(times: list[float], p: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))]


def measure(name: str, remote: Remote, repo: ProjectRepo, runs: int) -> dict[str, float]:
    head = repo.sha("main")
    colds = []
    for _ in range(3):
        cache_root = Path(tempfile.mkdtemp(prefix="bench-git-cache-"))
        started = time.perf_counter()
        tree = GitCache(cache_root).checkout(remote, head)
        colds.append(time.perf_counter() - started)
        assert len(list((tree / "models").glob("model_*.sql"))) == MODELS
        shutil.rmtree(cache_root)
    cache = GitCache(Path(tempfile.mkdtemp(prefix="bench-git-cache-")))
    cache.checkout(remote, head)
    same = []
    for _ in range(runs):
        started = time.perf_counter()
        cache.checkout(remote, head)
        same.append(time.perf_counter() - started)
    new, fetches = [], []
    for run in range(runs):
        version, path = time.time_ns(), f"models/model_{run + 10:04d}.sql"
        sha = repo.commit({path: model_sql(run + 10, version)}, f"{name} {run}")
        started = time.perf_counter()
        assert cache.commit_exists(remote, sha)  # the fetch
        fetched = time.perf_counter()
        tree = cache.checkout(remote, sha)  # the files written
        new.append(time.perf_counter() - started)
        fetches.append(fetched - started)
        assert f"version {version}" in (tree / path).read_text()
    figures = {
        "cold": statistics.median(colds),
        "same_p50": percentile(same, 0.5),
        "same_p95": percentile(same, 0.95),
        "new_p50": percentile(new, 0.5),
        "new_p95": percentile(new, 0.95),
        "fetch_p50": percentile(fetches, 0.5),
    }
    print(
        f"{name}: cold clone + checkout {figures['cold']:.2f} s (median of 3); warm, same commit "
        f"p50 {figures['same_p50'] * 1000:.2f} ms p95 {figures['same_p95'] * 1000:.2f} ms; warm, new commit "
        f"p50 {figures['new_p50'] * 1000:.0f} ms p95 {figures['new_p95'] * 1000:.0f} ms, of which the fetch "
        f"p50 {figures['fetch_p50'] * 1000:.0f} ms ({runs} runs each)"
    )
    return figures


def main(runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-git-served-"))
    started = time.perf_counter()
    repo = big_repo(root)
    objects = git("count-objects", "-vH", cwd=repo.bare).splitlines()
    size = next(line.split(": ")[1] for line in objects if line.startswith("size-pack"))
    print(f"repository: {MODELS} models, {HISTORY} commits, pack {size}; made in {time.perf_counter() - started:.0f} s")
    os.sync()  # the repository's own writes are not flushed during the measured checkouts
    with git_daemon(root) as url:
        daemon = measure("git daemon", Remote(f"{url}/big.git"), repo, runs)
    http = GitHttpServer(root, secrets.token_hex(16))
    try:
        measure("smart HTTP", Remote(f"{http.url}/big.git", token=http.token), repo, runs)
    finally:
        http.stop()
    shutil.rmtree(root)
    within = {True: "within", False: "over"}
    print(
        f"git checkout, {MODELS}-model repository over git daemon: cold {daemon['cold']:.2f} s; per run with a warm "
        f"cache: same commit p95 {daemon['same_p95'] * 1000:.2f} ms ({within[daemon['same_p95'] <= BUDGET_S]} "
        f"{BUDGET_S} s), new commit p50 {daemon['new_p50'] * 1000:.0f} ms p95 {daemon['new_p95'] * 1000:.0f} ms "
        f"({within[daemon['new_p95'] <= BUDGET_S]} {BUDGET_S} s)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
