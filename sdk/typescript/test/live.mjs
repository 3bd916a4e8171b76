// What the live tests share: the Ogem that tests/sdk/test_typescript_sdk.py started, and a state
// file that carries ids and secrets from the first run to the second (usage is recorded between).
import { readFileSync, writeFileSync } from "node:fs";

export const baseURL = process.env.OGEM_BASE_URL;
export const masterKey = process.env.OGEM_API_KEY;
const statePath = process.env.OGEM_TEST_STATE;

/** Set on a test when there is no live Ogem (a plain `npm test`). */
export const skip = statePath ? false : "needs the live Ogem of tests/sdk/test_typescript_sdk.py";

export const stateWrite = (state) => writeFileSync(statePath, JSON.stringify(state));
export const stateRead = () => JSON.parse(readFileSync(statePath, "utf8"));

/** An OpenAI-shaped call to /v1 with a virtual key, as an application makes it. */
export function v1(path, secret, body) {
  return fetch(`${baseURL}/v1/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}
