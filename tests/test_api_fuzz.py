"""schemathesis fuzzes the real server from its own OpenAPI description: whatever it sends, the
answer is documented (status, media type, shape, headers) and never a server error; malformed
requests are refused."""

from __future__ import annotations

import json

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, GenerationMode

from aftercare.app import App
from tests.conftest import CliRun
from tests.web_server import RunningWeb, running

EXAMPLES_PER_OPERATION = 10


def test_every_operation_answers_as_documented_whatever_it_is_sent(app: App, run: CliRun):
    key = json.loads(run("apikey", "create", "--name", "fuzz", "--role", "nurse", "--json").output)
    headers = {"Authorization": f"Bearer {key['key']}"}
    with running(app) as web:
        schema = schemathesis.openapi.from_url(web.url + "/api/v1/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 7
        session = requests.Session()
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                check(operation, mode, web, session, headers)


def check(
    operation: APIOperation,
    mode: GenerationMode,
    web: RunningWeb,
    session: requests.Session,
    headers: dict[str, str],
) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def one(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=web.url,
            session=session,
            headers=headers,
            # The description types members as strings; what makes one valid (a real phone,
            # an IANA zone) is the server's to say, with a 422 naming it.
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )

    one()
