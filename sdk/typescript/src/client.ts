/** `Ogem`: the management API's resources, sent with `fetch`, with retries and pages. */

import { OgemConnectionError } from "./errors.js";
import {
  API,
  Analytics,
  Budgets,
  Cache,
  Guardrails,
  Collection,
  Keys,
  Listing,
  Models,
  Organizations,
  type JsonObject,
  type Sender,
} from "./resources.js";
import { RetryPolicy, answerRead, pageNext, queryString, type Call, type QueryValue } from "./transport.js";

export const VERSION = "0.1.0";
const USER_AGENT = `ogem-sdk-typescript/${VERSION}`;
const DEFAULT_TIMEOUT = 30_000; // milliseconds, per attempt

export interface OgemOptions {
  /** Where Ogem listens; OGEM_BASE_URL, else http://127.0.0.1:8000. */
  baseURL?: string;
  /** The master key or a user's key with management rights; OGEM_API_KEY by default. */
  apiKey?: string;
  /** Milliseconds each attempt may take (30 000 by default). */
  timeout?: number;
  /** Attempts after the first one, for the answers that are retried (2 by default). */
  maxRetries?: number;
  /** A `fetch` of your own (proxies, TLS, instrumentation); the global one by default. */
  fetch?: typeof globalThis.fetch;
}

export interface SpendOptions {
  /** key (the default), team, organization, model, ... */
  groupBy?: string;
  /** `30d`, `2w` or `12h` back from now: the same as `start` that day. */
  since?: string;
  start?: Date | string;
  end?: Date | string;
  team?: number | string;
  key?: number | string;
  model?: string;
  organization?: number | string;
  [filter: string]: QueryValue;
}

const SINCE_UNITS: Record<string, number> = { h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `30d`, `2w` or `12h` back from now, as the first UTC day (YYYY-MM-DD) of a spend query. */
export function sinceStart(since: string, now: Date = new Date()): string {
  const match = /^(\d+)([dwh])$/.exec(since);
  if (!match) throw new RangeError(`since must look like 30d, 2w or 12h, not ${JSON.stringify(since)}`);
  const back = Number(match[1]) * SINCE_UNITS[match[2] as string] as number;
  return new Date(now.getTime() - back).toISOString().slice(0, 10);
}

function environment(name: string): string | undefined {
  // Read without needing Node's types in the shipped declarations (and without `process` at all
  // in runtimes that lack it).
  const process = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return process?.env?.[name] || undefined;
}

const sleep = (seconds: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, seconds * 1000));

export class Ogem implements Sender {
  readonly baseURL: string;
  readonly retry: RetryPolicy;
  readonly organizations: Organizations;
  readonly teams: Collection;
  readonly users: Collection;
  readonly memberships: Collection;
  readonly keys: Keys;
  readonly budgets: Budgets;
  readonly models: Models;
  readonly batches: Collection;
  /** Files uploaded on /v1/files (uploads go through the OpenAI SDK). */
  readonly files: Listing;
  readonly assistants: Collection;
  readonly threads: Collection;
  readonly assistantRuns: Collection;
  readonly fineTuningJobs: Collection;
  readonly cache: Cache;
  readonly guardrails: Guardrails;
  readonly analytics: Analytics;
  readonly #apiKey: string;
  readonly #timeout: number;
  readonly #fetch: typeof globalThis.fetch;

  constructor(options: OgemOptions = {}) {
    const url = options.baseURL || environment("OGEM_BASE_URL") || "http://127.0.0.1:8000";
    const key = options.apiKey || environment("OGEM_API_KEY");
    if (!key) throw new TypeError("an API key is needed: apiKey or OGEM_API_KEY");
    const fetcher = options.fetch ?? globalThis.fetch;
    if (typeof fetcher !== "function") throw new TypeError("no fetch: Node 18 or later, or options.fetch");
    this.baseURL = url.replace(/\/+$/, "");
    this.#apiKey = key;
    this.#timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.#fetch = fetcher;
    this.retry = new RetryPolicy(options.maxRetries ?? 2);
    this.organizations = new Organizations(this, "organizations");
    this.teams = new Collection(this, "teams");
    this.users = new Collection(this, "users");
    this.memberships = new Collection(this, "memberships");
    this.keys = new Keys(this, "keys");
    this.budgets = new Budgets(this, "budgets");
    this.models = new Models(this, "models");
    this.batches = new Collection(this, "batches");
    this.files = new Listing(this, "files");
    this.assistants = new Collection(this, "assistants");
    this.threads = new Collection(this, "threads");
    this.assistantRuns = new Collection(this, "assistant-runs");
    this.fineTuningJobs = new Collection(this, "fine_tuning/jobs");
    this.cache = new Cache(this);
    this.guardrails = new Guardrails(this);
    this.analytics = new Analytics(this);
  }

  /** Send one call, retrying it as the module comment of transport.ts says. */
  async send(call: Call): Promise<any> {
    const url = `${this.baseURL}${call.path}${queryString(call.params)}`;
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.#apiKey}`,
      Accept: "application/json",
      "User-Agent": USER_AGENT,
    };
    let body: string | undefined;
    if (call.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(call.json);
    }
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await this.#fetch(url, {
          method: call.method,
          headers,
          body,
          signal: AbortSignal.timeout(this.#timeout),
        });
      } catch (error) {
        const wait = this.retry.waitFor(call, attempt, null);
        if (wait === null) {
          const reason = error instanceof Error ? error.message : String(error);
          throw new OgemConnectionError(
            `Ogem could not be reached (${call.method} ${call.path}): ${reason}`,
            { cause: error },
          );
        }
        await sleep(wait);
        continue;
      }
      const wait = this.retry.waitFor(call, attempt, response);
      if (wait === null) return answerRead(response);
      await response.body?.cancel(); // free the connection before waiting
      await sleep(wait);
    }
  }

  /** Every row of a limit/offset listing, page by page. */
  async *paginate(call: Call): AsyncGenerator<JsonObject, void, undefined> {
    let following: Call | null = call;
    let offset = 0;
    while (following !== null) {
      const [rows, next]: [unknown[], Call | null] = pageNext(following, await this.send(following), offset);
      offset += rows.length;
      following = next;
      yield* rows as JsonObject[];
    }
  }

  /**
   * Spend and tokens per `groupBy` (key, team, organization, model, ...), from `since` (`30d`) or
   * `start` to `end`, filtered by `team`, `key`, `model`, `organization`.
   */
  spend(options: SpendOptions = {}): Promise<JsonObject> {
    const { groupBy = "key", since, start, ...filters } = options;
    if (since !== undefined && start !== undefined) throw new TypeError("give since or start, not both");
    const first = since !== undefined ? sinceStart(since) : start;
    return this.send({
      method: "GET",
      path: `${API}spend/`,
      params: { group_by: groupBy, start: first, ...filters },
    });
  }

  routingStatus(): Promise<JsonObject> {
    return this.send({ method: "GET", path: `${API}routing/status/` });
  }
}
