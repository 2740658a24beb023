"""/docs and /redoc are served from convlab's own vendored assets: no URL in them points off the machine."""

import re

import pytest

URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""")


def referenced_urls(html: str) -> list[str]:
    return [a or b for a, b in URL.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_local_assets(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    urls = referenced_urls(response.text)
    assert urls, "the page should load its scripts"
    for url in urls:
        assert url.startswith("/"), f"{page} references {url}, which is not served by convlab"
    assert "http://" not in response.text and "https://" not in response.text
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 0, url


def test_swagger_ui_does_not_call_the_online_validator(client):
    assert '"validatorUrl": null' in client.get("/docs").text


def test_vendored_assets_carry_their_licences(client):
    assert "Apache License" in client.get("/static/swagger-ui/LICENSE").text
    assert "MIT License" in client.get("/static/redoc/LICENSE").text


def test_openapi_document_is_served(client):
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "convlab" and "/jobs/{job_id}/predict" in schema["paths"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_forbid_the_browser_to_contact_other_hosts(client, page):
    policy = client.get(page).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'" and directives["connect-src"] == "'self'"
    assert "http" not in policy  # no other origin is allowed anywhere
