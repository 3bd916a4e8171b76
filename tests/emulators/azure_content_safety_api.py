"""A local emulator of Azure AI Content Safety's text APIs, written from its REST reference
(api-version 2024-09-01; 2023-10-01 is accepted too):

- `POST /contentsafety/text:analyze?api-version=...` with `{"text", "categories"?,
  "blocklistNames"?, "haltOnBlocklistHit"?, "outputType"?}` (text 1 to 10,000 characters,
  categories among Hate, SelfHarm, Sexual, Violence, outputType FourSeverityLevels (severities 0,
  2, 4, 6) or EightSeverityLevels (0 to 7)) answers `{"blocklistsMatch": [...],
  "categoriesAnalysis": [{"category", "severity"}]}` for the requested categories (all four by
  default). Its classifier: "hateful" is Hate at severity 4, "violent" Violence at 2. Its one
  blocklist, `competitors`, holds "acme".
- `POST /contentsafety/text:shieldPrompt?api-version=...` with `{"userPrompt", "documents"?}`
  (the prompt up to 10,000 characters, at most 5 documents of 10,000 in all) answers
  `{"userPromptAnalysis": {"attackDetected"}, "documentsAnalysis": [{"attackDetected"}]}`; an
  attack is a text asking to ignore previous instructions.

A missing or wrong `Ocp-Apim-Subscription-Key` is 401, a missing or unknown api-version 404 and
a bad body 400, in Azure's `{"error": {"code", "message"}}` shape. Scripted `Fault`s answer the
next requests instead.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "azure-content-safety-emulator-key"
API_VERSIONS = {"2024-09-01", "2023-10-01"}
CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")
ANALYZE_FIELDS = {"text", "categories", "blocklistNames", "haltOnBlocklistHit", "outputType"}
CLASSIFIER = {"Hate": ("hateful", 4), "Violence": ("violent", 2)}
BLOCKLISTS = {"competitors": [("item-1", "acme")]}
ATTACK = "ignore previous instructions"


def _error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status=status)


class AzureContentSafetyEmulator(ScriptedEmulator):
    name = "azure-content-safety-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/contentsafety/text:analyze", self._analyze)
        app.router.add_post("/contentsafety/text:shieldPrompt", self._shield)

    async def _admit(self, request: web.Request) -> tuple[Any, web.Response | None]:
        received = await self.receive(request)
        fault = self.next_reply()
        if isinstance(fault, Fault):
            return None, fault.response()
        if received.headers.get("ocp-apim-subscription-key") != API_KEY:
            return None, _error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
                "to provide a valid key for an active subscription and use a correct regional "
                "API endpoint for your resource.",
            )
        if received.query.get("api-version") not in API_VERSIONS:
            return None, _error(404, "404", "Resource not found")
        if not isinstance(received.body, dict):
            return None, _error(400, "InvalidRequestBody", "The request body is not JSON.")
        return received.body, None

    async def _analyze(self, request: web.Request) -> web.Response:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        problem = _analyze_problem(body)
        if problem is not None:
            return _error(400, "InvalidRequestBody", problem)
        text = body["text"].lower()
        matches = [
            {"blocklistName": name, "blocklistItemId": item_id, "blocklistItemText": item}
            for name in body.get("blocklistNames") or ()
            for item_id, item in BLOCKLISTS[name]
            if item in text
        ]
        answer: dict[str, Any] = {"blocklistsMatch": matches, "categoriesAnalysis": []}
        if matches and body.get("haltOnBlocklistHit"):
            return json_response(answer)
        eight = body.get("outputType") == "EightSeverityLevels"
        for category in body.get("categories") or CATEGORIES:
            phrase, severity = CLASSIFIER.get(category, ("", 0))
            found = severity if phrase and phrase in text else 0
            if not eight:
                found = found // 2 * 2  # the four-level scale: 0, 2, 4, 6
            answer["categoriesAnalysis"].append({"category": category, "severity": found})
        return json_response(answer)

    async def _shield(self, request: web.Request) -> web.Response:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        unknown = set(body) - {"userPrompt", "documents"}
        prompt = body.get("userPrompt")
        documents = body.get("documents") or []
        if unknown:
            return _error(400, "InvalidRequestBody", f"Unknown fields: {sorted(unknown)}")
        if not isinstance(prompt, str) or len(prompt) > 10_000:
            return _error(400, "InvalidRequestBody", "userPrompt is a string of 10,000 or less")
        if (
            not isinstance(documents, list)
            or len(documents) > 5
            or not all(isinstance(d, str) for d in documents)
            or sum(len(d) for d in documents) > 10_000
        ):
            return _error(
                400, "InvalidRequestBody", "documents: at most 5 strings of 10,000 in all"
            )
        return json_response(
            {
                "userPromptAnalysis": {"attackDetected": ATTACK in prompt.lower()},
                "documentsAnalysis": [{"attackDetected": ATTACK in d.lower()} for d in documents],
            }
        )


def _analyze_problem(body: dict[str, Any]) -> str | None:
    unknown = set(body) - ANALYZE_FIELDS
    if unknown:
        return f"Unknown fields: {sorted(unknown)}"
    text = body.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= 10_000:
        return "text is a string of 1 to 10,000 characters"
    categories = body.get("categories")
    if categories is not None and (
        not isinstance(categories, list) or not set(categories) <= set(CATEGORIES)
    ):
        return f"categories are among {CATEGORIES}"
    names = body.get("blocklistNames")
    if names is not None and (not isinstance(names, list) or not set(names) <= set(BLOCKLISTS)):
        return "a blocklist in blocklistNames does not exist"
    if body.get("outputType") not in (None, "FourSeverityLevels", "EightSeverityLevels"):
        return "outputType is FourSeverityLevels or EightSeverityLevels"
    if "haltOnBlocklistHit" in body and not isinstance(body["haltOnBlocklistHit"], bool):
        return "haltOnBlocklistHit is a boolean"
    return None
