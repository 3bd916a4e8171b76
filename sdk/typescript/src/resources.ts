/**
 * The management API's resources. A resource method builds a `Call` and the client sends it.
 * `OPERATIONS` lists every [method, path] the package calls; a test compares it with the
 * Python SDK's list, which is itself checked against `/api/v1/schema/`.
 */

import { PAGE_SIZE, type Call, type Method, type Query } from "./transport.js";

export const API = "/api/v1/";

/** An object as the API answers it (its fields are the API's own, snake_case). */
export type JsonObject = { [field: string]: any };
export type Id = number | string;

export interface Sender {
  send(call: Call): Promise<any>;
  paginate(call: Call): AsyncGenerator<JsonObject, void, undefined>;
}

/** Query parameters of `list`, and `pageSize` (100 by default). */
export type ListFilters = Query & { pageSize?: number };

/** A resource with list, get and delete. */
export class Listing {
  readonly path: string;

  constructor(
    protected readonly client: Sender,
    name: string,
  ) {
    this.path = `${API}${name}/`;
  }

  /**
   * Every object the caller may see (fetched page by page as it is iterated with `for await`),
   * filtered by the resource's query parameters (`team`, `search`, `ordering`, ...).
   */
  list(filters: ListFilters = {}): AsyncGenerator<JsonObject, void, undefined> {
    const { pageSize = PAGE_SIZE, ...query } = filters;
    return this.client.paginate({ method: "GET", path: this.path, params: { ...query, limit: pageSize } });
  }

  get(id: Id): Promise<JsonObject> {
    return this.client.send({ method: "GET", path: `${this.path}${id}/` });
  }

  /** Resolves to null when the API answers 204 No Content. */
  delete(id: Id): Promise<JsonObject | null> {
    return this.client.send({ method: "DELETE", path: `${this.path}${id}/` });
  }
}

/** A resource that is also created, updated (PATCH) and replaced (PUT). */
export class Collection extends Listing {
  create(fields: JsonObject): Promise<JsonObject> {
    return this.client.send({ method: "POST", path: this.path, json: fields });
  }

  /** Change the given fields only. */
  update(id: Id, fields: JsonObject): Promise<JsonObject> {
    return this.client.send({ method: "PATCH", path: `${this.path}${id}/`, json: fields });
  }

  /** Write the whole object (fields left out take their defaults). */
  replace(id: Id, fields: JsonObject): Promise<JsonObject> {
    return this.client.send({ method: "PUT", path: `${this.path}${id}/`, json: fields });
  }
}

export class Organizations extends Collection {
  /** The organization's SCIM tokens (prefixes and dates, never the secrets). */
  scimTokens(id: Id): Promise<any> {
    return this.client.send({ method: "GET", path: `${this.path}${id}/scim-tokens/` });
  }

  /** A new SCIM token; its secret is in this answer only. */
  scimTokenCreate(id: Id, fields: JsonObject = {}): Promise<JsonObject> {
    return this.client.send({ method: "POST", path: `${this.path}${id}/scim-tokens/`, json: fields });
  }
}

/** Virtual keys. `create` and `rotate` answer the secret (`key`) once. */
export class Keys extends Collection {
  /** /v1 refuses the key from now on. */
  revoke(id: Id): Promise<JsonObject> {
    return this.client.send({ method: "POST", path: `${this.path}${id}/revoke/` });
  }

  /** A new secret; the old one keeps working for the grace period. */
  rotate(id: Id, options: { gracePeriodSeconds?: number } = {}): Promise<JsonObject> {
    const json =
      options.gracePeriodSeconds === undefined
        ? {}
        : { grace_period_seconds: options.gracePeriodSeconds };
    return this.client.send({ method: "POST", path: `${this.path}${id}/rotate/`, json });
  }
}

export class Budgets extends Collection {
  /** Start a new period now: spend back to zero. */
  reset(id: Id): Promise<JsonObject> {
    return this.client.send({ method: "POST", path: `${this.path}${id}/reset/` });
  }
}

/** Database deployments (model groups and where they are served). */
export class Models extends Collection {
  health(): Promise<any> {
    return this.client.send({ method: "GET", path: `${this.path}health/` });
  }
}

export class Cache {
  constructor(private readonly client: Sender) {}

  /** Hits, misses, hit rate, tokens and cost saved (`group_by`, `start`, `end`, ...). */
  stats(filters: Query = {}): Promise<JsonObject> {
    return this.client.send({ method: "GET", path: `${API}cache/stats/`, params: filters });
  }

  /** Empty a tenant's response-cache namespace (`organization`, `team`, `key`, ...). */
  purge(scope: Query = {}): Promise<any> {
    return this.client.send({ method: "DELETE", path: `${API}cache/`, params: scope });
  }
}

export class Guardrails {
  constructor(private readonly client: Sender) {}

  /** The guardrails' decisions on the caller's requests (no matched text is ever kept). */
  decisions(filters: Query = {}): Promise<any> {
    return this.client.send({ method: "GET", path: `${API}guardrails/decisions/`, params: filters });
  }
}

/** Charts' figures over time (`start`, `end`, `bucket: "hour" | "day"`, `team`, ...). */
export class Analytics {
  constructor(private readonly client: Sender) {}

  /** Latency and TTFT p50/p95, error rate, throughput per model (`group_by: "deployment"`). */
  performance(query: Query = {}): Promise<JsonObject> {
    return this.client.send({ method: "GET", path: `${API}analytics/performance/`, params: query });
  }

  /** Requests, tokens and spend per team (`group_by: "model"`: per model). */
  usage(query: Query = {}): Promise<JsonObject> {
    return this.client.send({ method: "GET", path: `${API}analytics/usage/`, params: query });
  }

  /** The response cache's hit rate and savings over time and per model. */
  cache(query: Query = {}): Promise<JsonObject> {
    return this.client.send({ method: "GET", path: `${API}analytics/cache/`, params: query });
  }

  /** Cheaper models of the same class per team, unused keys, budgets' burn-down. */
  insights(query: Query = {}): Promise<JsonObject> {
    return this.client.send({ method: "GET", path: `${API}analytics/insights/`, params: query });
  }
}

const COLLECTIONS = [
  "organizations",
  "teams",
  "users",
  "memberships",
  "keys",
  "budgets",
  "models",
  "batches",
  "assistants",
  "threads",
  "assistant-runs",
  "fine_tuning/jobs",
] as const;

const COLLECTION_OPERATIONS: readonly (readonly [Method, string])[] = [
  ["GET", ""],
  ["POST", ""],
  ["GET", "{id}/"],
  ["PUT", "{id}/"],
  ["PATCH", "{id}/"],
  ["DELETE", "{id}/"],
];

/** Every [method, path] the package calls, in the schema's spelling (tests/sdk checks it). */
export const OPERATIONS: readonly (readonly [Method, string])[] = Object.freeze([
  ...COLLECTIONS.flatMap((name) =>
    COLLECTION_OPERATIONS.map(([method, suffix]) => [method, `${API}${name}/${suffix}`] as const),
  ),
  ["GET", `${API}files/`],
  ["GET", `${API}files/{file_id}/`],
  ["DELETE", `${API}files/{file_id}/`],
  ["GET", `${API}organizations/{id}/scim-tokens/`],
  ["POST", `${API}organizations/{id}/scim-tokens/`],
  ["POST", `${API}keys/{id}/revoke/`],
  ["POST", `${API}keys/{id}/rotate/`],
  ["POST", `${API}budgets/{id}/reset/`],
  ["GET", `${API}models/health/`],
  ["GET", `${API}cache/stats/`],
  ["DELETE", `${API}cache/`],
  ["GET", `${API}spend/`],
  ["GET", `${API}routing/status/`],
  ["GET", `${API}guardrails/decisions/`],
  ["GET", `${API}analytics/performance/`],
  ["GET", `${API}analytics/usage/`],
  ["GET", `${API}analytics/cache/`],
  ["GET", `${API}analytics/insights/`],
] as const);
