"""/search/?q= (the search box's "see all", and the search without JavaScript) and the
search box in the header of every page."""

from __future__ import annotations

import pytest

from tests.search.conftest import PROJECT

pytestmark = pytest.mark.django_db


def test_results_grouped_by_kind_each_linking_to_a_page_that_opens(client, viewer, shop):
    client.force_login(viewer)
    response = client.get("/search/", {"q": "orders"})
    assert response.status_code == 200
    html = response.content.decode()
    for kind in ("node", "job", "environment", "tag", "column"):
        assert f'data-testid="search-group-{kind}"' in html, kind
    # Groups come in the order of their best result: nodes (an exact name) first.
    assert html.index("search-group-node") < html.index("search-group-job") < html.index("search-group-column")
    for result in response.context["groups"][0]["results"] + response.context["groups"][1]["results"]:
        assert client.get(result.url.split("#")[0]).status_code == 200, result.url
    assert client.get(f"/lineage/{PROJECT}/?tag=pii").status_code == 200


def test_the_header_search_box_is_on_every_page_for_readers(client, viewer, shop):
    client.force_login(viewer)
    for url in ("/", "/runs/", f"/lineage/{PROJECT}/", "/search/?q=x"):
        html = client.get(url).content.decode()
        assert 'data-testid="site-search"' in html and 'action="/search/"' in html, url
        assert 'data-api="/api/v1/search/"' in html and "portal/search.js" in html, url


def test_a_hostile_name_is_escaped(client, viewer, shop):
    client.force_login(viewer)
    html = client.get("/search/", {"q": "<script>"}).content.decode()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "<script>window.__pwned" not in html and "<img src=x" not in html


def test_nothing_found_and_a_too_long_search(client, viewer, shop):
    client.force_login(viewer)
    assert 'data-testid="search-none"' in client.get("/search/", {"q": "zzz_nothing"}).content.decode()
    response = client.get("/search/", {"q": "x" * 201})
    assert response.status_code == 400 and "at most 200 characters" in response.content.decode()


def test_no_role_is_refused_and_no_login_goes_to_login(client, nobody, shop):
    assert client.get("/search/", {"q": "orders"})["Location"].startswith("/login/")
    client.force_login(nobody)
    assert client.get("/search/", {"q": "orders"}).status_code == 403
    assert 'data-testid="site-search"' not in client.get("/account/tokens/").content.decode()
