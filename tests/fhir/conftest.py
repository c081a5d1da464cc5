"""Helpers for the FHIR facade tests: every body is parsed with fhir.resources' R4B models."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

BASE = "/fhir/R4/"


def parse(response) -> Any:
    """The response body as its R4B model; fails the test if it does not validate."""
    assert response["Content-Type"].startswith("application/fhir+json"), response["Content-Type"]
    body = response.json()
    resource = get_fhir_model_class(body["resourceType"]).model_validate(body)
    if body["resourceType"] == "Bundle":
        for entry in body.get("entry", []):
            kind = entry["resource"]["resourceType"]
            get_fhir_model_class(kind).model_validate(entry["resource"])
    return resource


def entries(bundle) -> list[Any]:
    return [entry.resource for entry in bundle.entry or []]


def issue_codes(response) -> list[str]:
    outcome = parse(response)
    assert outcome.get_resource_type() == "OperationOutcome"
    return [issue.code for issue in outcome.issue]


@pytest.fixture
def fhir_get(community):
    def get(username: str, path: str, params: dict | None = None, **headers: str):
        return community.client(username).get(BASE + path, params or {}, **headers)

    return get
