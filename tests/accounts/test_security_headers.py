"""Every response carries a Content-Security-Policy and a Permissions-Policy (the browser
tests check that no page trips the policy)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url", ["/login/", "/", "/audit/", "/admin/", "/api/v1/docs/", "/no-such-page/", "/healthz", "/readyz"]
)
def test_every_page_sends_csp_and_permissions_policy(client, admin_user, url):
    client.force_login(admin_user)
    response = client.get(url)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    for directive in ("frame-ancestors 'none'", "base-uri 'self'", "form-action 'self'", "object-src 'none'"):
        assert directive in csp
    assert "script-src" not in csp  # scripts fall back to 'self': no inline script, no eval
    assert "camera=()" in response.headers["Permissions-Policy"]
