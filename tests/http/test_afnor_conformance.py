"""The AFNOR Flow Service's answers conform to the standard's own document, as schemathesis judges them
against the live server: generated requests (valid and invalid), every response checked against the
document (status documented, content type, body schema, headers) and none a 5xx.

The document is the published one (``gateway/http/afnor-flow-service-1.1.0.json``, a copy of
``../shared/standards``) with three changes, each a test of its own or explained here:

* ``ReasonCode`` is ``anyOf`` (enum, string) instead of ``oneOf``: as published, every reason code of the
  standard's own list matches both branches and so fails ``oneOf``; the intent ("a predefined set + the
  ability to extend it") is ``anyOf`` (``test_the_standard_reason_codes_fail_its_own_one_of``).
* A link from ``createFlow``'s 202 to ``getFlow`` (``flowId``), which the document does not declare, so
  that the stateful run deposits flows and then reads them.
* For the invalid-data run, ``X-Request-Id`` is any short token of safe characters (the foundation's
  choice, shared by every route), not only a UUID, so a non-UUID request id is not a request to refuse.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

from engine.cpu_pool import CpuPool
from tests.grpc_support import invoice
from tests.http_support import TECH, HttpEnv, bearer

MAX_EXAMPLES = 15  # per operation and mode: the whole run stays well under a minute
# Valid by the document is not always accepted here, by design: CDAR and FRR flows, processing rules other
# than B2B (422), a tracking id or file name our deposits refuse (400). Each such answer is a documented
# status with the standard's Error object, which the other checks verify.
EXCLUDED = [positive_data_acceptance]
# The document's global BearerAuth covers /v1/healthcheck too; ours answers without a token, by design
# (load balancers and supervision probes hold none), and says nothing but "up".
PUBLIC = [ignored_auth, negative_data_rejection]


def document() -> dict[str, Any]:
    raw = resources.files("gateway.http").joinpath("afnor-flow-service-1.1.0.json").read_text()
    doc: dict[str, Any] = json.loads(raw)
    return doc


def judged(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as responses are judged by: ``ReasonCode`` as ``anyOf`` (see the module docstring),
    and a link from a deposit to its flow so that the stateful run follows it."""
    out = copy.deepcopy(doc)
    schemas = out["components"]["schemas"]
    schemas["ReasonCode"]["anyOf"] = schemas["ReasonCode"].pop("oneOf")
    post = out["components"]["responses"]["FlowPostResponse"]
    post["links"] = {"GetFlow": {"operationId": "getFlow", "parameters": {"flowId": "$response.body#/flowId"}}}
    return out


def tolerant_request_id(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with ``X-Request-Id`` as any string (see the module docstring)."""
    out = copy.deepcopy(doc)
    out["components"]["parameters"]["RequestIdHeader"]["schema"].pop("format")
    return out


def test_the_standard_reason_codes_fail_its_own_one_of() -> None:
    """Why responses are judged with ``anyOf``: under the published ``oneOf``, a reason code of the
    standard's own list (EmptyFlow) is invalid, since it matches both branches; an extension code is not."""
    doc = document()
    detail = {"$ref": "#/components/schemas/AcknowledgementDetail", "components": doc["components"]}
    published = jsonschema_rs.Draft4Validator(detail)
    fixed = jsonschema_rs.Draft4Validator({**detail, "components": judged(doc)["components"]})
    empty = {"level": "Error", "item": "f.xml", "reasonCode": "EmptyFlow", "reasonMessage": "The file is empty."}
    extension = {**empty, "reasonCode": "BR_FR_12"}
    assert not published.is_valid(empty) and published.is_valid(extension)
    assert fixed.is_valid(empty) and fixed.is_valid(extension)


# sha256 of the published document (../shared/standards/afnor-xp-z12-013-flow-service-1.1.0.json).
PUBLISHED_SHA256 = "4b7c8197160f013dd5d3ecf82f4a2085ff72a514df71d678587f5b8f32e1f96e"


def test_the_repo_copy_is_the_standard() -> None:
    """The shipped document is byte for byte the published one (its pinned sha256; and the file itself
    when ../shared/standards is beside the checkout)."""
    shipped = resources.files("gateway.http").joinpath("afnor-flow-service-1.1.0.json").read_bytes()
    assert hashlib.sha256(shipped).hexdigest() == PUBLISHED_SHA256
    shared = Path(__file__).resolve().parents[3] / "shared/standards/afnor-xp-z12-013-flow-service-1.1.0.json"
    if shared.exists():
        assert shared.read_bytes() == shipped


@pytest.fixture
async def env(tmp_path: Path, cpu_pool: CpuPool) -> AsyncIterator[HttpEnv]:
    env = await HttpEnv.start(tmp_path, cpu_pool, workers=True)
    yield env
    await env.close()


async def deposited(env: HttpEnv, content: bytes) -> str:
    """A flow deposited and processed (no longer Pending): its id."""
    async with env.client(TECH) as http:
        files = {"flowInfo": (None, '{"flowSyntax": "UBL"}', "application/json"), "file": ("f.xml", content)}
        flow_id: str = (await http.post("/v1/flows", files=files)).json()["flowId"]
        for _ in range(600):
            if (await http.get(f"/v1/flows/{flow_id}")).json()["acknowledgement"]["status"] != "Pending":
                return flow_id
            await asyncio.sleep(0.1)
    raise AssertionError(f"{flow_id} still pending")


def run_cases(strategy: Any, base_url: str, excluded: list[Any], failures: list[str]) -> None:
    """Up to ``MAX_EXAMPLES`` cases of ``strategy``, each called and validated; failures collected."""

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        try:
            case.call_and_validate(base_url=base_url, headers=bearer(TECH), excluded_checks=excluded)
        except (AssertionError, FailureGroup) as exc:
            failures.append(f"{case.method} {case.formatted_path}: {exc}"[:3000])

    run()


def fuzz(base_url: str, doc: dict[str, Any], mode: GenerationMode, known_flows: list[str]) -> list[str]:
    """Run every operation's generated cases against ``base_url``; returns the failures."""
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy(generation_mode=mode)
        if operation.path == "/v1/flows/{flowId}" and mode is GenerationMode.POSITIVE:
            for flow_id in known_flows:
                strategy |= operation.as_strategy(generation_mode=mode, path_parameters={"flowId": flow_id})
        excluded = EXCLUDED + (PUBLIC if operation.path == "/v1/healthcheck" else [])
        run_cases(strategy, base_url, excluded, failures)
    return failures


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
async def test_every_response_conforms_to_the_standard(env: HttpEnv, mode: GenerationMode) -> None:
    """Valid requests (and, separately, invalid ones) to each operation get documented, schema-valid
    answers, never a 5xx; invalid ones are refused."""
    known = [await deposited(env, invoice("S-1")), await deposited(env, b"")]  # integrated, rejected
    doc = judged(document()) if mode is GenerationMode.POSITIVE else tolerant_request_id(judged(document()))
    failures = await asyncio.to_thread(fuzz, env.base_url, doc, mode, known)
    assert not failures, "\n".join(failures)


def walk(base_url: str, doc: dict[str, Any]) -> None:
    """Schemathesis' state machine over the document's links: deposit, then get what was deposited."""
    workflow = schemathesis.openapi.from_dict(doc).as_state_machine()

    class Walk(workflow):  # type: ignore[misc,valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base_url, "headers": bearer(TECH)}

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            excluded = EXCLUDED + (PUBLIC if case.operation.path == "/v1/healthcheck" else [])
            case.validate_response(response, excluded_checks=excluded)

    settings = hypothesis.settings(
        max_examples=12,
        stateful_step_count=4,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    Walk.run(settings=settings)


async def test_deposits_then_reads_follow_the_standard(env: HttpEnv) -> None:
    """Stateful: flows deposited by generated requests are then read back by the id the 202 gave, every
    answer documented and schema-valid (including rejected flows' acknowledgement details)."""
    rejected = await deposited(env, b"")
    async with env.client(TECH) as http:
        metadata = (await http.get(f"/v1/flows/{rejected}")).json()
    assert metadata["acknowledgement"]["details"][0]["reasonCode"] == "EmptyFlow"
    await asyncio.to_thread(walk, env.base_url, judged(document()))
