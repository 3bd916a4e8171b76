"""A local emulator of AWS Bedrock Runtime's ApplyGuardrail, written from its API reference:
`POST /guardrail/{guardrailIdentifier}/version/{guardrailVersion}/apply` with `{"source": "INPUT"
| "OUTPUT", "content": [{"text": {"text", "qualifiers"?}}], "outputScope"?: "INTERVENTIONS" |
"FULL"}`, answering `{"usage", "action": "NONE" | "GUARDRAIL_INTERVENED", "actionReason",
"outputs": [{"text"}], "assessments": [...], "guardrailCoverage"}`.

Every request's SigV4 signature is VERIFIED with botocore (tests/emulators/bedrock_api.py's
`sigv4_verify`: the canonical request rebuilt from what arrived on the socket, re-signed with the
access key's secret; service `bedrock`). Its one guardrail, `gr-emulator` (or its ARN; versions
`1` and `DRAFT`), has: a denied topic `Investment advice` (a text mentioning "stock tip"), a content
filter (`HATE` on "hateful", blocked) and a PII policy that ANONYMIZES e-mail addresses (`EMAIL`:
the output text holds `{EMAIL}` in their place) and BLOCKS US social security numbers
(`US_SOCIAL_SECURITY_NUMBER`). A blocked text's output is the guardrail's blocked message.
Unknown guardrails are 404 ResourceNotFoundException, bad bodies 400 ValidationException, bad
signatures 403, as AWS answers. Scripted `Fault`s answer the next requests instead.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tests.emulators.bedrock_api import ACCESS_KEY, REGION, SECRET_KEY, Refused, sigv4_verify
from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

GUARDRAIL_ID = "gr-emulator"
GUARDRAIL_ARN = f"arn:aws:bedrock:{REGION}:123456789012:guardrail/{GUARDRAIL_ID}"
VERSIONS = {"1", "DRAFT"}
TEXT_FIELDS = {"text", "qualifiers"}
BLOCKED_MESSAGE = "Sorry, the model cannot answer this question."
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")


def _refusal(status: int, exception: str, message: str) -> web.Response:
    return json_response(
        {"message": message}, status=status, **{"x-amzn-ErrorType": f"{exception}:"}
    )


class BedrockGuardrailsEmulator(ScriptedEmulator):
    name = "bedrock-guardrails-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/guardrail/{identifier}/version/{version}/apply", self._apply)

    async def _apply(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        fault = self.next_reply()
        if isinstance(fault, Fault):
            return fault.response()
        try:
            sigv4_verify(
                request,
                received.raw,
                keys={ACCESS_KEY: (SECRET_KEY, None)},
                region=REGION,
                service="bedrock",
            )
        except Refused as refused:
            return _refusal(refused.status, refused.exception, refused.message)
        identifier = request.match_info["identifier"]
        if (
            identifier not in (GUARDRAIL_ID, GUARDRAIL_ARN)
            or request.match_info["version"] not in VERSIONS
        ):
            return _refusal(
                404, "ResourceNotFoundException", "The guardrail identifier or version is invalid."
            )
        problem = _problem(received.body)
        if problem is not None:
            return _refusal(400, "ValidationException", problem)
        return json_response(_assess(received.body))


def _problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The request body is not a JSON object."
    unknown = set(body) - {"source", "content", "outputScope"}
    if unknown:
        return f"Unknown fields: {sorted(unknown)}"
    if body.get("source") not in ("INPUT", "OUTPUT"):
        return "source must be INPUT or OUTPUT"
    if body.get("outputScope") not in (None, "INTERVENTIONS", "FULL"):
        return "outputScope must be INTERVENTIONS or FULL"
    content = body.get("content")
    if not isinstance(content, list) or not content:
        return "content must be a non-empty list"
    for block in content:
        text = block.get("text") if isinstance(block, dict) else None
        if (
            set(block) != {"text"}
            or not isinstance(text, dict)
            or set(text) - {"text", "qualifiers"}
        ):
            return "each content block is {text: {text, qualifiers?}}"
        if not isinstance(text.get("text"), str):
            return "text.text must be a string"
    return None


def _assess(body: dict[str, Any]) -> dict[str, Any]:
    texts = [block["text"]["text"] for block in body["content"]]
    whole = "\n".join(texts)
    lowered = whole.lower()
    assessment: dict[str, Any] = {}
    blocked = False
    if "stock tip" in lowered:
        blocked = True
        assessment["topicPolicy"] = {
            "topics": [{"name": "Investment advice", "type": "DENY", "action": "BLOCKED"}]
        }
    if "hateful" in lowered:
        blocked = True
        assessment["contentPolicy"] = {
            "filters": [
                {
                    "type": "HATE",
                    "confidence": "HIGH",
                    "filterStrength": "HIGH",
                    "action": "BLOCKED",
                }
            ]
        }
    entities = [
        {"match": match, "type": "EMAIL", "action": "ANONYMIZED"} for match in EMAIL.findall(whole)
    ]
    ssns = SSN.findall(whole)
    entities += [
        {"match": match, "type": "US_SOCIAL_SECURITY_NUMBER", "action": "BLOCKED"} for match in ssns
    ]
    blocked = blocked or bool(ssns)
    if entities:
        assessment["sensitiveInformationPolicy"] = {"piiEntities": entities}
    intervened = bool(assessment)
    if blocked:
        outputs = [{"text": BLOCKED_MESSAGE}]
    elif intervened:
        outputs = [{"text": EMAIL.sub("{EMAIL}", text)} for text in texts]
    else:
        outputs = []
    characters = sum(len(text) for text in texts)
    return {
        "usage": {
            "topicPolicyUnits": 1,
            "contentPolicyUnits": 1,
            "wordPolicyUnits": 0,
            "sensitiveInformationPolicyUnits": 1,
            "sensitiveInformationPolicyFreeUnits": 0,
            "contextualGroundingPolicyUnits": 0,
        },
        "action": "GUARDRAIL_INTERVENED" if intervened else "NONE",
        "actionReason": "Guardrail blocked." if blocked else "No action.",
        "outputs": outputs,
        "assessments": [assessment] if intervened else [{}],
        "guardrailCoverage": {"textCharacters": {"guarded": characters, "total": characters}},
    }
