"""`manage.py check --deploy`: names the stored environments that break the password or
env var rules (runs/environments.py), e.g. made before them: their runs end `error` until an
admin fixes them. Reads only."""

from __future__ import annotations

from django.core.checks import Tags, Warning, register
from django.db import DatabaseError

from runs.environments import env_vars_problem, password_variable_problem
from runs.models import Environment


def _problems(environment: Environment) -> list[str]:
    found = [env_vars_problem(environment.env_vars or {})]
    if environment.password_env:
        found.append(password_variable_problem(environment.password_env))
    return [problem for problem in found if problem]


@register(Tags.security, deploy=True)
def check_environment_rules(app_configs=None, **kwargs) -> list:
    try:
        environments = list(Environment.objects.only("project", "name", "password_env", "env_vars"))
    except DatabaseError as exc:
        return [Warning(f"could not check the environments: {exc}".strip(), id="runs.W002")]
    return [
        Warning(
            f"environment {environment.name!r} of {environment.project}: {problem}",
            hint="its runs end `error` until an admin changes it on the environments page",
            id="runs.W001",
        )
        for environment in environments
        for problem in _problems(environment)
    ]
