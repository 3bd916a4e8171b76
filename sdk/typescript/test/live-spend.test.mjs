// Second run, after the usage of the first was recorded: spend, rotation and revocation.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Ogem } from "@ogem/sdk";

import { baseURL, masterKey, skip, stateRead, v1 } from "./live.mjs";

test("the spend of the chat completion, then rotate and revoke: /v1 refuses both secrets", { skip }, async () => {
  const state = stateRead();
  const ogem = new Ogem({ baseURL, apiKey: masterKey });
  const spend = await ogem.spend({ groupBy: "team", since: "1d", organization: state.organization });
  assert.equal(spend.results.length, 1);
  const [row] = spend.results;
  assert.equal(row.team, state.team);
  assert.equal(row.requests, 1);
  assert.ok(Number(row.spend) > 0);
  assert.equal(Number((await ogem.keys.get(state.key)).total_spend), Number(row.spend));

  const rotated = await ogem.keys.rotate(state.key, { gracePeriodSeconds: 0 });
  assert.notEqual(rotated.key, state.secret);
  assert.equal((await ogem.keys.revoke(state.key)).status, "revoked");
  for (const secret of [state.secret, rotated.key]) {
    const refused = await v1("models", secret);
    assert.equal(refused.status, 401);
    assert.ok((await refused.json()).error.message);
  }
});
