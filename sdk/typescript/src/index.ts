/** Ogem's management API (/api/v1) for TypeScript and JavaScript: `Ogem`. */

export { Ogem, VERSION, sinceStart, type OgemOptions, type SpendOptions } from "./client.js";
export { OgemAPIError, OgemConnectionError, OgemError, errorMessage } from "./errors.js";
export {
  API,
  Analytics,
  Budgets,
  Cache,
  Collection,
  Keys,
  Listing,
  Models,
  OPERATIONS,
  Organizations,
  type Id,
  type JsonObject,
  type ListFilters,
} from "./resources.js";
export { RetryPolicy, retryAfterSeconds, type Call, type Method, type Query, type QueryValue } from "./transport.js";
