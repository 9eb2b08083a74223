"""Selectors under hostile input (issue 11, S9): bad glob patterns and oversized selectors
are a 400 invalid_selector on the select API and on a trigger — never a 500 or a silent
empty selection — and nothing is created."""

from __future__ import annotations

import pytest

from runs.models import Run
from tests.lineage.conftest import PROJECT

BAD = [
    ("tag:[z-a]", "reversed"),
    ("fct_[z-a]*", "reversed"),
    ("path:models/[9-0]*", "reversed"),
    ("file:[b-a].sql", "reversed"),
    ("source:raw.[z-a]", "reversed"),
    ("tag:[", "not closed"),
    ("config.materialized:[tab", "not closed"),
    (" ".join(f"stg_users,fct_users{i}" for i in range(26)), "at most 50"),
]


@pytest.mark.parametrize(("select", "words"), BAD, ids=[b[0][:30] for b in BAD])
def test_bad_pattern_or_too_many_terms_is_400_invalid_selector(
    api_client, operator, dbt_projects_dir, snapshot, select, words
):
    api_client.force_authenticate(operator)
    answer = api_client.get(f"/api/v1/projects/{PROJECT}/select/", {"select": select})
    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == "invalid_selector" and words in answer.json()["detail"]
    exclude = api_client.get(f"/api/v1/projects/{PROJECT}/select/", {"select": "fct_users", "exclude": select})
    assert exclude.status_code == 400 and exclude.json()["field"] == "exclude"
    body = {"project": PROJECT, "command": "build", "select": select}
    trigger = api_client.post("/api/v1/runs/", body, format="json")
    assert trigger.status_code == 400 and trigger.json()["code"] == "invalid_selector", trigger.content
    assert Run.objects.count() == 0
