/**
 * Requests, retries and pages.
 *
 * Retries: a 429 or a 503 is retried whatever the method (Ogem refused it before doing
 * anything), other 5xx answers and lost connections only for methods that are safe to repeat
 * (GET, PUT, DELETE, ...), never a POST that may have created something. The wait is the
 * answer's `Retry-After` when it has one (seconds or an HTTP date, capped), else an exponential
 * backoff with jitter.
 */

import { OgemAPIError } from "./errors.js";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
export type QueryValue = string | number | boolean | Date | null | undefined;
export type Query = Record<string, QueryValue | readonly QueryValue[]>;

/** One API call: the method, the path under the base URL, query and JSON body. */
export interface Call {
  readonly method: Method;
  readonly path: string;
  readonly params?: Query;
  readonly json?: unknown;
}

export const RETRY_ALWAYS: ReadonlySet<number> = new Set([429, 503]);
export const RETRY_IF_IDEMPOTENT: ReadonlySet<number> = new Set([500, 502, 504]);
export const IDEMPOTENT: ReadonlySet<string> = new Set([
  "GET",
  "HEAD",
  "OPTIONS",
  "PUT",
  "DELETE",
  "PATCH",
]);
const BACKOFF_BASE = 0.5; // seconds: 0.5, 1, 2, ... with up to 25% jitter
export const PAGE_SIZE = 100;

export class RetryPolicy {
  constructor(
    readonly maxRetries: number = 2,
    readonly maxWait: number = 60, // seconds: a longer Retry-After is cut to this
  ) {}

  /** Seconds to wait before the next attempt, or null when the call is not retried. */
  waitFor(call: Call, attempt: number, response: Response | null): number | null {
    if (attempt >= this.maxRetries) return null;
    if (response === null) {
      if (!IDEMPOTENT.has(call.method)) return null; // the connection failed
    } else if (!RETRY_ALWAYS.has(response.status)) {
      if (!RETRY_IF_IDEMPOTENT.has(response.status) || !IDEMPOTENT.has(call.method)) return null;
    }
    if (response !== null) {
      const told = retryAfterSeconds(response.headers.get("retry-after"));
      if (told !== null) return Math.min(told, this.maxWait);
    }
    const backoff = BACKOFF_BASE * 2 ** attempt;
    return Math.min(backoff * (1 + Math.random() / 4), this.maxWait);
  }
}

export function retryAfterSeconds(value: string | null): number | null {
  if (!value) return null;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const moment = Date.parse(text);
  if (Number.isNaN(moment)) return null;
  return Math.max((moment - Date.now()) / 1000, 0);
}

function queryText(value: QueryValue): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString().slice(0, 10);
  return String(value); // booleans as the API spells them: true, false
}

/** The query string of `params` without the unset ones ("" when there are none). */
export function queryString(params: Query | undefined): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params ?? {})) {
    const values: readonly QueryValue[] = Array.isArray(value) ? value : [value as QueryValue];
    for (const each of values) {
      const text = queryText(each);
      if (text !== null) search.append(name, text);
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** The decoded body of a success, or OgemAPIError carrying the API's message. */
export async function answerRead(response: Response): Promise<any> {
  const text = await response.text();
  let body: unknown = null;
  if (response.status !== 204 && text) {
    body = text;
    if ((response.headers.get("content-type") ?? "").includes("json")) {
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON after all: keep the text, it is still the best message there is
      }
    }
  }
  if (response.status >= 400) {
    throw new OgemAPIError({
      status: response.status,
      body,
      requestId: response.headers.get("x-request-id"),
    });
  }
  return body;
}

/** The rows of a limit/offset page and the call for the next page (null after the last). */
export function pageNext(call: Call, page: unknown, offset: number): [unknown[], Call | null] {
  if (page === null || typeof page !== "object" || Array.isArray(page) || !("results" in page)) {
    return [Array.isArray(page) ? page : [], null];
  }
  const { results, next } = page as { results: unknown[]; next?: unknown };
  const rows = [...results];
  if (!next || rows.length === 0) return [rows, null];
  return [rows, { ...call, params: { ...call.params, offset: offset + rows.length } }];
}
