// Pages and errors against a live Ogem.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Ogem, OgemAPIError } from "@ogem/sdk";

import { baseURL, masterKey, skip } from "./live.mjs";

test("list walks every page", { skip }, async () => {
  const ogem = new Ogem({ baseURL, apiKey: masterKey });
  const organization = await ogem.organizations.create({ name: "Paged TS", slug: "paged-ts" });
  const made = new Set();
  for (let n = 0; n < 7; n++) {
    made.add((await ogem.teams.create({ organization: organization.id, name: `T${n}` })).id);
  }
  const listed = new Set();
  for await (const team of ogem.teams.list({ organization: organization.id, pageSize: 3 })) {
    listed.add(team.id);
  }
  assert.deepEqual(listed, made);
});

test("errors carry the API's message", { skip }, async () => {
  const ogem = new Ogem({ baseURL, apiKey: masterKey });
  await assert.rejects(ogem.keys.create({ name: "typo", allowed_models: ["mock-chat"] }), (error) => {
    assert.ok(error instanceof OgemAPIError);
    assert.equal(error.status, 400);
    assert.match(error.message, /allowed_models/);
    assert.match(error.message, /Unknown field/);
    return true;
  });
  await assert.rejects(ogem.teams.get(10 ** 9), (error) => error.status === 404 && error.message.length > 0);
  const stranger = new Ogem({ baseURL, apiKey: "sk-not-a-key", maxRetries: 0 });
  await assert.rejects(stranger.teams.get(1), (error) => [401, 403].includes(error.status));
});
