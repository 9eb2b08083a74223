"""The deployment files under deploy/ are build-checked here (no Docker engine on this
machine): hadolint on the Dockerfile, the compose file parsed and checked for what a
deployment relies on, `systemd-analyze verify` on the units."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def known_variables() -> set[str]:
    """Names settings.py and its readers (env.py) read through the env_* helpers, or
    docs/configuration.md's table lists."""
    names: set[str] = set()
    for module in ("settings.py", "env.py"):
        source = (ROOT / "transformation_portal" / module).read_text()
        names |= set(re.findall(r'env_(?:str|bool|int|list)\(\s*"([A-Z0-9_]+)"', source))
    table = (ROOT / "docs" / "configuration.md").read_text()
    for row in re.findall(r"^\| (`[A-Z0-9_`, /]+) \|", table, flags=re.MULTILINE):
        names |= set(re.findall(r"`([A-Z0-9_]+)`", row))
    return names


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed: pip install -r requirements-dev.txt"
    done = subprocess.run([hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_the_dockerfile_runs_as_a_numeric_non_root_user_with_a_readiness_healthcheck():
    instructions = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    assert "FROM python:3.11-slim" in instructions
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any("pip install --no-cache-dir -r /app/requirements.txt" in line for line in instructions)
    healthcheck = next(i for i, line in enumerate(instructions) if line.startswith("HEALTHCHECK"))
    assert "/readyz" in instructions[healthcheck + 1]
    assert not any(re.match(r"(ENV|ARG)\b.*\b(SECRET_KEY|PASSWORD|DATABASE_URL)\b", line) for line in instructions)
    assert ".venv" in (ROOT / ".dockerignore").read_text().split()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def portal_services(compose: dict) -> dict[str, dict]:
    return {
        name: s for name, s in compose["services"].items() if s.get("image", "").startswith("transformation-portal")
    }


def test_every_web_service_has_a_healthcheck_on_the_health_endpoints(compose):
    web = {name: s for name, s in portal_services(compose).items() if "--web-only" in s.get("command", [])}
    assert web, "no service runs runportal --web-only"
    for name, service in web.items():
        probe = " ".join(service["healthcheck"]["test"])
        assert "/readyz" in probe or "/healthz" in probe, name
    proxy = compose["services"]["proxy"]
    assert proxy["depends_on"]["web"] == {"condition": "service_healthy"}
    assert compose["services"]["web"]["deploy"]["replicas"] >= 2


def test_workers_run_worker_only_under_distinct_names(compose):
    workers = {name: s for name, s in portal_services(compose).items() if "--worker-only" in s.get("command", [])}
    assert len(workers) >= 2
    names = [s["environment"]["PORTAL_WORKER_NAME"] for s in workers.values()]
    assert len(set(names)) == len(names), names
    assert len({str(s["volumes"]) for s in workers.values()}) == len(workers), "workers share a RUNS_DIR volume"


def test_migrations_run_once_before_web_and_workers_start(compose):
    for name, service in portal_services(compose).items():
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


def test_the_portal_services_use_only_variables_the_portal_knows(compose):
    known = known_variables()
    for name, service in portal_services(compose).items():
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, unknown to settings.py and docs/configuration.md"
    example = (DEPLOY / "portal.env.example").read_text()
    unknown = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE)) - known
    assert not unknown, f"portal.env.example names {sorted(unknown)}"


def test_the_variable_check_itself_refuses_a_made_up_name():
    assert "DATABASE_URL" in known_variables() and "READY_WORKER_MAX_AGE" in known_variables()
    assert "PORTAL_NO_SUCH_SETTING" not in known_variables()


UNITS = ["portal-web.service", "portal-worker.service"]


def test_systemd_units_verify(tmp_path):
    """`systemd-analyze verify` checks every key and that ExecStart's binary exists: the
    install path is pointed at a stand-in install (this machine's virtualenv) for the check."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (apt-get install systemd)"
    install = tmp_path / "install"
    (install / ".venv" / "bin").mkdir(parents=True)
    (install / ".venv" / "bin" / "python").symlink_to(sys.executable)
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/transformation-portal", str(install))
        (tmp_path / unit).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / unit) for unit in UNITS)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def unit_settings(unit: str) -> dict[str, str]:
    section = (DEPLOY / "systemd" / unit).read_text().split("[Service]")[1].split("[Install]")[0]
    return dict(line.split("=", 1) for line in section.splitlines() if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize("unit", UNITS)
def test_units_stop_gently_and_restart(unit, settings):
    service = unit_settings(unit)
    assert service["EnvironmentFile"].startswith("/etc/")
    assert service["Restart"] in ("on-failure", "always")
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the main process only: it stops dbt itself
    assert int(service["TimeoutStopSec"]) > settings.RUN_CANCEL_GRACE_SECONDS
    role = "--web-only" if unit == "portal-web.service" else "--worker-only"
    assert service["ExecStart"].endswith(f"manage.py runportal {role}")


def test_the_images_code_is_not_writable_by_the_user_that_runs_it():
    """Root owns /app's code: a process of the portal's user (a dbt package, a hook, a bug)
    cannot change what the next start runs, nor the static files collected at build. Only the
    data is its."""
    text = (DEPLOY / "Dockerfile").read_text()
    copies = [line for line in text.splitlines() if line.startswith(("COPY", "ADD"))]
    assert copies and not any("--chown" in line or "--chmod" in line for line in copies), copies
    chowned = re.findall(r"chown\s+(?:-R\s+)?\S+\s+([^&\n\\]+)", text)
    assert chowned and all(set(paths.split()) <= {"/data"} for paths in chowned), chowned


def test_the_image_collects_its_static_files_at_build_as_root():
    """The JavaScript and CSS pages load are collected when the image is built, by root after
    the code is copied and before the portal's user takes over: that user (a dbt package, a
    hook, a bug) cannot rewrite what browsers run, and no start needs to write them."""
    instructions = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    copied = instructions.index("COPY . /app")
    user = next(i for i, line in enumerate(instructions) if line.startswith("USER "))
    collects = [i for i, line in enumerate(instructions) if "manage.py collectstatic" in line]
    assert collects and all(copied < i < user for i in collects), instructions
    assert not any("staticfiles" in line and "chown" in line for line in instructions)


def test_minio_has_no_default_password_and_refuses_to_start_without_one(compose, tmp_path):
    minio = compose["services"]["minio"]
    password = minio["environment"]["MINIO_ROOT_PASSWORD"]
    assert re.fullmatch(r"\$\{[A-Z_]+:-\}", password), f"a default password: {password}"
    shell, flag, script = minio["entrypoint"]
    assert (shell, flag) == ("/bin/sh", "-c")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "minio").write_text('#!/bin/sh\necho "minio $*"\n')
    (fake / "minio").chmod(0o755)
    script = script.replace("$$", "$")  # compose's escape of a literal $
    env = {"PATH": f"{fake}:/usr/bin:/bin"}
    refused = subprocess.run(
        [shell, flag, script], env={**env, "MINIO_ROOT_PASSWORD": ""}, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "MINIO_ROOT_PASSWORD" in refused.stderr
    started = subprocess.run(
        [shell, flag, script], env={**env, "MINIO_ROOT_PASSWORD": "s3cret-pass"}, capture_output=True, text=True
    )
    assert started.returncode == 0 and started.stdout.strip() == "minio server /data"


def test_readyz_through_nginx_only_from_the_networks_the_operator_lists(compose, tmp_path):
    conf = (DEPLOY / "nginx.conf").read_text()
    readyz = conf.split("location = /readyz {")[1].split("}")[0]
    directives = [line.strip() for line in readyz.splitlines() if line.strip()]
    assert "include /etc/nginx/readyz-allow.conf;" in directives and "deny all;" in directives
    assert not any(line.startswith("allow ") for line in directives), "networks written into nginx.conf"
    proxy = compose["services"]["proxy"]
    assert proxy["environment"]["READYZ_ALLOWED_NETWORKS"] == "${READYZ_ALLOWED_NETWORKS:-}"
    hook = DEPLOY / "nginx-readyz-allow.sh"
    assert f"./{hook.name}:/docker-entrypoint.d/40-readyz-allow.sh:ro" in proxy["volumes"]
    assert hook.stat().st_mode & 0o111, "the nginx image runs only executable hooks"
    allow_file = tmp_path / "readyz-allow.conf"
    script = hook.read_text().replace("/etc/nginx/readyz-allow.conf", str(allow_file))

    def run(networks: str) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "READYZ_ALLOWED_NETWORKS": networks}
        return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True)

    assert run("10.20.0.0/16, 192.168.5.7,fd00::/8").returncode == 0
    assert allow_file.read_text().splitlines() == ["allow 10.20.0.0/16;", "allow 192.168.5.7;", "allow fd00::/8;"]
    assert run("").returncode == 0 and allow_file.read_text() == ""  # nobody: /readyz is 403 through the proxy
    bad = run("10.0.0.0/8; allow all")
    assert bad.returncode != 0 and "not an address or CIDR network" in bad.stderr
    assert "READYZ_ALLOWED_NETWORKS" in (ROOT / "docs" / "deploy.md").read_text()
