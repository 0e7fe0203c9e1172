"""Tests generated from the API's own OpenAPI schema (schemathesis 4), over the scored sample world.

Every operation in `/openapi.json` is called with inputs schemathesis derives from the
schema: valid ones and, in negative mode, ones that break it (wrong types, values out of
range, extra fields, missing parts). With an admin token, every answer must

- never be a 5xx (`not_a_server_error`),
- have a status, content type, headers and body that the schema documents for it
  (`status_code_conformance`, `content_type_conformance`, `response_headers_conformance`,
  `response_schema_conformance`): errors included, which the schema describes as sent
  (`{"detail": "<one line>"}`, serving/security.py),
- refuse input that breaks the schema with a 4xx (`negative_data_rejection`), and be
  refused without the token (`ignored_auth`),
- and, for a 4xx, carry a JSON one-line `detail` (checked here).

A second pass fixes the path parameters to real ids (a scored customer, the run, a saved
list, the churn model) so the 200 answers themselves are checked against their schemas.
Examples per operation are bounded (`FUZZ_EXAMPLES`, `REAL_EXAMPLES`) and the seed is
fixed: the whole file takes well under a minute once the world is built (tests/test_api.py
builds it once per session).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.test_api import _campaign, auth, read, world  # noqa: F401  (fixtures)

FUZZ_EXAMPLES = 25
REAL_EXAMPLES = 5
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
          "ignored_auth"]


def _config(parameters: dict | None = None, mode: str = "all") -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": 20250601,
        "cache": {"enabled": False},
        # The token is ours (a valid admin one on every call), not generated; unknown query parameters are
        # ignored by the API (as by most), so they are not "invalid data" that must be refused.
        "generation": {"mode": mode, "database": "none", "unique-inputs": True,
                       "with-security-parameters": False, "allow-extra-parameters": True},
        # examples: the schema has none; coverage enumerates every boundary of every field (hundreds of
        # cases, unbounded by max-examples); stateful needs links the schema does not declare.
        "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False},
                   "stateful": {"enabled": False}, "fuzzing": {"enabled": True}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        **({"parameters": parameters} if parameters else {}),
    })


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request) -> None:
    """schemathesis 4.32's lazy schemas read and restore `node._nodeid`, which pytest 9.2's nodes no longer have."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@pytest.fixture(scope="module")
def app(world):
    from serving.api import create_app

    return create_app(world["cfg"], world["token_file"])


@pytest.fixture(scope="module")
def real_ids(world, app) -> dict[str, str]:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        made = client.post("/targets", json={"campaign": _campaign(world), "top": 10}, headers=auth(world, "admin"))
    assert made.status_code == 200, made.text
    customer = read(world, "select customer_id from current_customer_scores order by customer_id limit 1")
    return {"path.customer_id": str(customer["customer_id"][0]), "path.run_id": world["run_id"],
            "path.list_id": made.json()["list_id"], "path.name": "churn"}


@pytest.fixture(scope="module")
def fuzz_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())


@pytest.fixture(scope="module")
def real_schema(app, real_ids):
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(real_ids, mode="positive"))


def check_error_body(response) -> None:
    """A 4xx is JSON with a one-line `detail`."""
    if 400 <= response.status_code < 500:
        assert response.headers["content-type"][0].startswith("application/json"), response.headers
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail and "\r" not in detail, detail


SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])


@schemathesis.pytest.from_fixture("fuzz_schema").parametrize()
@settings(max_examples=FUZZ_EXAMPLES, **SETTINGS)
def test_generated_requests_get_documented_answers_and_no_5xx(case, world) -> None:
    response = case.call_and_validate(headers=auth(world, "admin"))
    check_error_body(response)


@schemathesis.pytest.from_fixture("real_schema").parametrize()
@settings(max_examples=REAL_EXAMPLES, **SETTINGS)
def test_answers_about_real_ids_match_their_schemas(case, world) -> None:
    response = case.call_and_validate(headers=auth(world, "admin"))
    check_error_body(response)
