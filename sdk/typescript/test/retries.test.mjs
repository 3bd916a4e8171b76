// Retries, errors and helpers against a local server that misbehaves on purpose (no Ogem needed).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { Ogem, OgemAPIError, OgemConnectionError, OPERATIONS, errorMessage, sinceStart } from "@ogem/sdk";

// GETs: 429 with Retry-After: 1, then 503, then the answer. POSTs: a 500.
const seen = [];
const server = createServer((request, response) => {
  seen.push([request.method, performance.now()]);
  const answer = (status, body, headers = {}) => {
    response.writeHead(status, { "Content-Type": "application/json", ...headers });
    response.end(JSON.stringify(body));
  };
  if (request.method === "POST") return answer(500, { detail: "Broken." });
  const attempt = seen.filter(([method]) => method === "GET").length;
  if (attempt === 1) return answer(429, { detail: "Slow down." }, { "Retry-After": "1" });
  if (attempt === 2) return answer(503, { detail: "Busy." });
  return answer(200, { id: 7, name: "Search" });
});
let baseURL;

before(async () => {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseURL = `http://127.0.0.1:${server.address().port}`;
});
after(() => server.close());

test("a 429 and a 503 are retried after Retry-After, a POST is never repeated after a 500", async () => {
  seen.length = 0;
  const ogem = new Ogem({ baseURL, apiKey: "k", maxRetries: 3 });
  assert.deepEqual(await ogem.teams.get(7), { id: 7, name: "Search" });
  const times = seen.filter(([method]) => method === "GET").map(([, moment]) => moment);
  assert.equal(times.length, 3);
  assert.ok(times[1] - times[0] >= 990, "the server's Retry-After, not the short backoff");

  await assert.rejects(ogem.teams.create({ organization: 1, name: "X" }), (error) => {
    assert.ok(error instanceof OgemAPIError);
    assert.equal(error.status, 500);
    assert.equal(error.message, "Broken.");
    return true;
  });
  assert.equal(seen.filter(([method]) => method === "POST").length, 1);

  seen.length = 0;
  const impatient = new Ogem({ baseURL, apiKey: "k", maxRetries: 0 });
  await assert.rejects(impatient.teams.get(7), { name: "OgemAPIError", status: 429, message: "Slow down." });
});

test("a server that cannot be reached is an OgemConnectionError", async () => {
  const closed = createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = closed.address().port;
  await new Promise((resolve) => closed.close(resolve));
  const ogem = new Ogem({ baseURL: `http://127.0.0.1:${port}`, apiKey: "k", maxRetries: 1 });
  await assert.rejects(ogem.teams.get(1), (error) => error instanceof OgemConnectionError);
});

test("errors carry the API's message in each of its shapes", () => {
  assert.equal(errorMessage({ detail: "Not found." }), "Not found.");
  assert.equal(errorMessage({ error: { message: "Budget exceeded", type: "x" } }), "Budget exceeded");
  assert.equal(errorMessage({ name: ["This field is required."], slug: "taken" }), "name: This field is required.; slug: taken");
  assert.equal(errorMessage(" Bad gateway \n"), "Bad gateway");
});

test("since is counted back in days, weeks or hours, and anything else is refused", () => {
  const now = new Date("2026-03-10T05:00:00Z");
  assert.equal(sinceStart("30d", now), "2026-02-08");
  assert.equal(sinceStart("1w", now), "2026-03-03");
  assert.equal(sinceStart("6h", now), "2026-03-09");
  assert.throws(() => sinceStart("30 days", now), RangeError);
  assert.throws(() => new Ogem({ baseURL, apiKey: "k" }).spend({ since: "1d", start: "2026-01-01" }), TypeError);
});

test("no operation is listed twice", () => {
  const spelled = OPERATIONS.map(([method, path]) => `${method} ${path}`);
  assert.equal(new Set(spelled).size, spelled.length);
});
