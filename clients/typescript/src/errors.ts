/**
 * Typed errors: each carries the HTTP status and the service's JSON `message` (the body every
 * error of the service has: `{"error": code, "message": text, "detail": ...}`, app/api/errors.py).
 * The same classes as the Python client's (clients/python/src/vae_client/errors.py).
 */

import { retryAfterSeconds } from "./retry.js";
import type { components } from "./schema.js";

/** The JSON body of every error the service answers. */
export type ErrorBody = components["schemas"]["ErrorResponse"];

/** A training job, as `GET /jobs/{id}` gives it. */
export type Job = components["schemas"]["JobInfo"];

/**
 * Base of every error this client throws. `status` is the HTTP status (null when no answer
 * came), `message` the service's human-readable `message`, `error` its machine-readable code
 * (e.g. `queue_full`), `detail` its optional `detail` (validation errors list what was wrong
 * where).
 */
export class VaeError extends Error {
  readonly status: number | null;
  readonly error: string | null;
  readonly detail: unknown;

  constructor(
    message: string,
    status: number | null = null,
    error: string | null = null,
    detail: unknown = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

/** A 4xx: the request was wrong (malformed, invalid, too large, a conflict). */
export class BadRequest extends VaeError {}

/** 401 (no admin token) or 403 (a wrong one). */
export class Unauthorized extends BadRequest {}

/** 404: an unknown model, dataset or job. */
export class NotFound extends BadRequest {}

/** An answer that says when to try again: `retryAfter` is the service's `Retry-After` in
 * seconds (null when it sent none). */
export class RetryLater extends VaeError {
  readonly retryAfter: number | null;

  constructor(
    message: string,
    status: number,
    error: string | null,
    detail: unknown,
    retryAfter: number | null,
  ) {
    super(message, status, error, detail);
    this.retryAfter = retryAfter;
  }
}

/** 429: the batch queue is full or the client passed its rate limit (`retryAfter`). */
export class RateLimited extends RetryLater {}

/** 503: the model or the job backend is not available now (`retryAfter` seconds). */
export class Unavailable extends RetryLater {}

/** Any other 5xx (500, 502, 504: the request's deadline passed). */
export class ServerError extends VaeError {}

/** No answer: the service could not be reached (connection attempts are retried as the retry
 * policy allows; a request is never sent twice), or the connection broke. */
export class ConnectionFailed extends VaeError {}

/** No answer within the client's `timeout`. */
export class RequestTimeout extends VaeError {}

/** `wait` saw the job end `failed` or `cancelled`; `job` is its last snapshot. */
export class JobFailed extends VaeError {
  readonly job: Job;

  constructor(job: Job) {
    super(`job ${job.id} ${job.status}: ${job.error ?? "no error given"}`);
    this.job = job;
  }
}

/** `wait` gave up before the job ended (or before the server answered with its version);
 * `job` is the last snapshot seen. */
export class WaitTimeout extends VaeError {
  readonly job: Job;

  constructor(job: Job, timeout: number, waitingFor?: string) {
    super(`job ${job.id} ${waitingFor ?? `still ${job.status}`} after ${timeout} s`);
    this.job = job;
  }
}

// The error of each status that has its own; any other 4xx is a BadRequest, 5xx a ServerError.
const ERRORS: Record<number, typeof BadRequest> = {
  401: Unauthorized,
  403: Unauthorized,
  404: NotFound,
};
const RETRY_LATER: Record<number, typeof RetryLater> = { 429: RateLimited, 503: Unavailable };

function isErrorBody(body: unknown): body is Partial<ErrorBody> {
  return typeof body === "object" && body !== null && !Array.isArray(body);
}

/**
 * The typed error for a 4xx or 5xx answer. `body` is the answer's body as openapi-fetch gives
 * it: the parsed JSON, or the text when it was not JSON.
 */
export function errorFor(response: Response, body: unknown): VaeError {
  const status = response.status;
  let message = response.statusText || `HTTP ${status}`;
  let code: string | null = null;
  let detail: unknown = null;
  if (isErrorBody(body)) {
    const said = body.message || (typeof body.detail === "string" ? body.detail : null);
    message = said ? String(said) : message;
    code = typeof body.error === "string" ? body.error : null;
    detail = body.detail ?? null;
  } else if (typeof body === "string" && body.trim()) {
    message = body.trim().slice(0, 500);
  }
  const later = RETRY_LATER[status];
  if (later) {
    return new later(message, status, code, detail, retryAfterSeconds(response.headers));
  }
  const kind = ERRORS[status];
  if (kind) {
    return new kind(message, status, code, detail);
  }
  return status >= 400 && status < 500
    ? new BadRequest(message, status, code, detail)
    : new ServerError(message, status, code, detail);
}
