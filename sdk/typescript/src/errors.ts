/** Errors the client throws: each carries the API's own message. */

/** Base of every error this package throws. */
export class OgemError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Ogem could not be reached (after the retries). */
export class OgemConnectionError extends OgemError {}

/** Ogem answered with an error status; `message` is the API's own explanation. */
export class OgemAPIError extends OgemError {
  readonly status: number;
  readonly body: unknown;
  readonly requestId: string | null;

  constructor(init: { status: number; body: unknown; requestId: string | null }) {
    super(errorMessage(init.body) || `HTTP ${init.status}`);
    this.status = init.status;
    this.body = init.body;
    this.requestId = init.requestId;
  }
}

/**
 * The message of the management API's error shapes: DRF's `{"detail": ...}`, field errors
 * `{"field": ["..."]}`, and OpenAI's `{"error": {"message": ...}}`.
 */
export function errorMessage(body: unknown): string {
  if (typeof body === "string") return body.trim();
  if (body === null || typeof body !== "object" || Array.isArray(body)) return "";
  const fields = body as Record<string, unknown>;
  const error = fields.error;
  if (error !== null && typeof error === "object") {
    const message = (error as Record<string, unknown>).message;
    if (typeof message === "string") return message;
  }
  if (typeof fields.detail === "string") return fields.detail;
  return Object.entries(fields)
    .map(([field, problems]) => {
      const texts = Array.isArray(problems) ? problems : [problems];
      return `${field}: ${texts.map(String).join(" ")}`;
    })
    .join("; ");
}
