"""New Relic's Event API, from its reference: `POST /v1/accounts/{accountId}/events` with the
license key in `Api-Key` (or an insert key in `X-Insert-Key`; 403 when wrong), a JSON array of
at most 2000 events, each with an `eventType` matching `[a-zA-Z0-9:_ ]+` and at most 255
attributes whose values are strings of at most 4096 characters, numbers or booleans, with no
`nr.` names; a body over 1 MB is 413. Accepted events answer 200 `{"success": true, "uuid"}`."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from tests.callbacks.vendor_emulators.ingest import IngestEmulator, Refused, json_body, require
from tests.emulators.scripted import Received, json_response

ACCOUNT_ID = "1234567"
LICENSE_KEY = "nr-emulator-license-keyNRAL"
INSERT_KEY = "nr-emulator-insert-key"
EVENT_TYPE = re.compile(r"^[a-zA-Z0-9:_ ]{1,255}$")


class NewRelicEmulator(IngestEmulator):
    name = "newrelic-emulator"
    path = "/v1/accounts/{account}/events"

    def ingest(self, received: Received, match_info: dict[str, str]) -> list[Any]:
        key_ok = received.headers.get("api-key") == LICENSE_KEY or (
            received.headers.get("x-insert-key") == INSERT_KEY
        )
        if not key_ok or match_info["account"] != ACCOUNT_ID:
            raise Refused(403, "invalid key for this account")
        if len(received.raw) > 1_000_000:
            raise Refused(413, "Request Entity Too Large")
        body = json_body(received)
        require(isinstance(body, list) and 0 < len(body) <= 2000, "a list of 1-2000 events")
        for event in body:
            require(isinstance(event, dict), "an event is no object")
            require(len(event) <= 255, "more than 255 attributes")
            require(EVENT_TYPE.match(str(event.get("eventType", ""))) is not None, "eventType")
            for name, value in event.items():
                require(not name.startswith("nr."), f"reserved attribute {name}")
                require(isinstance(value, str | int | float | bool), f"{name} is no scalar value")
                if isinstance(value, str):
                    require(len(value) <= 4096, f"{name} is longer than 4096 characters")
        return [{"account": match_info["account"], **event} for event in body]

    def reply(self, records: list[Any]) -> web.Response:
        return json_response({"success": True, "uuid": str(uuid.uuid4())})
