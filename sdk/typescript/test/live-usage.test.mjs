// First run against a live Ogem: organization → team → key with a budget → a chat completion.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Ogem } from "@ogem/sdk";

import { baseURL, masterKey, skip, stateWrite, v1 } from "./live.mjs";

test("organization, team and key with a budget, then a chat completion with the key", { skip }, async () => {
  const ogem = new Ogem({ baseURL, apiKey: masterKey });
  const organization = await ogem.organizations.create({ name: "Acme TS", slug: "acme-ts" });
  const team = await ogem.teams.create({ organization: organization.id, name: "Search", slug: "search" });
  const key = await ogem.keys.create({ team: team.id, name: "search-prod", max_budget: "5" });
  assert.match(key.key, /^sk-/);
  assert.equal(key.organization, organization.id);

  const response = await v1("chat/completions", key.key, {
    model: "mock-chat",
    messages: [{ role: "user", content: "hello" }],
  });
  assert.equal(response.status, 200, await response.clone().text());
  const answer = await response.json();
  assert.ok(answer.choices[0].message.content);

  stateWrite({ organization: organization.id, team: team.id, key: key.id, secret: key.key });
});
