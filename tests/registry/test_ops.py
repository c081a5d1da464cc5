import json

from django.test import Client


def test_healthz_and_readyz_report_their_dependencies(db):
    client = Client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "storage": "ok", "redis": "ok"}


def test_readyz_says_which_dependency_is_down(db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    ready = Client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"] == "failed"


def test_openapi_schema_lists_the_registry_endpoints(db):
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    for path in (
        "/api/v1/auth/token/",
        "/api/v1/patients/",
        "/api/v1/patients/{patient_id}/",
        "/api/v1/audit/",
        "/api/v1/organisations/",
        "/api/v1/me/",
    ):
        assert path in paths


def test_api_docs_are_served_from_local_assets(db):
    page = Client().get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower() and "https://" not in page


def test_metrics_are_exposed_for_prometheus(db):
    body = Client().get("/metrics").content.decode()
    assert "django_http_requests_total_by_method_total" in body
    assert "huizhen_audit_unsealed_rows 0.0" in body


def test_pages_default_to_simplified_chinese(db):
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    assert 'lang="zh-hans"' in response.content.decode()
    english = Client().get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en")
    assert 'lang="en"' in english.content.decode()


def test_every_response_carries_a_request_id(db):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="lb-abc123")
    assert response["X-Request-ID"] == "lb-abc123"
    generated = Client().get("/healthz", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]
    assert len(generated) == 32 and generated.isalnum()
