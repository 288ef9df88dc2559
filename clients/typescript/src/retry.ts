/**
 * When to try a request again: the Python client's rules (clients/python/src/vae_client/retry.py).
 * 429 and 503 only, after the service's Retry-After, bounded in attempts and in total wait.
 */

/** The response's `Retry-After` in seconds (delta-seconds or an HTTP date), or null. */
export function retryAfterSeconds(headers: Headers): number | null {
  const value = headers.get("retry-after")?.trim();
  if (value === undefined || value === "") {
    return null;
  }
  if (/^\d+(\.\d+)?$/.test(value)) {
    return Math.max(0, Number(value));
  }
  const when = Date.parse(value);
  if (Number.isNaN(when) || !/GMT|UTC|[+-]\d{4}$/.test(value)) {
    return null; // an HTTP date is always in GMT; one without a zone says no moment
  }
  return Math.max(0, (when - Date.now()) / 1000);
}

/** What a `RetryPolicy` is made of; every field has the Python client's default. */
export interface RetryOptions {
  /** A request is sent at most this many times (1: no retries). Default 5. */
  maxAttempts?: number;
  /** Give up (raising the last answer's error) rather than wait past this many seconds in all.
   * Default 30. */
  maxWait?: number;
  /** The statuses retried. Default 429 and 503. */
  statuses?: Iterable<number>;
  /** Without a Retry-After: the first backoff in seconds, doubled each attempt. Default 0.5. */
  backoff?: number;
  /** The longest backoff, in seconds. Default 8. */
  maxBackoff?: number;
  /** A random fraction up to this added to a Retry-After, so clients told the same second do not
   * all come back at once. Default 0.1. */
  jitter?: number;
}

/**
 * Retries of a request the service answered with one of `statuses` (429 and 503).
 *
 * Each wait is the answer's `Retry-After` (plus a random `jitter` fraction), or without one an
 * exponential backoff from `backoff` seconds up to `maxBackoff`. A request is sent at most
 * `maxAttempts` times, and never waited on past `maxWait` seconds in all. No other status is
 * retried; of transport errors, only a connection that could not be made (the request was never
 * sent), up to `maxAttempts`.
 */
export class RetryPolicy {
  readonly maxAttempts: number;
  readonly maxWait: number;
  readonly statuses: ReadonlySet<number>;
  readonly backoff: number;
  readonly maxBackoff: number;
  readonly jitter: number;

  constructor(options: RetryOptions = {}) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.maxWait = options.maxWait ?? 30;
    this.statuses = new Set(options.statuses ?? [429, 503]);
    this.backoff = options.backoff ?? 0.5;
    this.maxBackoff = options.maxBackoff ?? 8;
    this.jitter = options.jitter ?? 0.1;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) {
      throw new RangeError("maxAttempts must be an integer of at least 1 (1: no retries)");
    }
    if ([this.maxWait, this.backoff, this.maxBackoff, this.jitter].some((v) => !(v >= 0))) {
      throw new RangeError("waits and jitter must not be negative");
    }
  }

  /** A policy that sends every request once. */
  static never(): RetryPolicy {
    return new RetryPolicy({ maxAttempts: 1, maxWait: 0 });
  }

  /**
   * Seconds to wait before sending again after `response` to attempt number `attempt` (1 for
   * the first), having waited `waited` seconds so far; null to give up. `only` narrows the
   * statuses retried for one call.
   */
  delay(
    response: Response,
    attempt: number,
    waited: number,
    only?: ReadonlySet<number>,
  ): number | null {
    const retried = this.statuses.has(response.status) && (!only || only.has(response.status));
    if (!retried || attempt >= this.maxAttempts) {
      return null;
    }
    const told = retryAfterSeconds(response.headers);
    const wait =
      told === null
        ? Math.min(this.maxBackoff, this.backoff * 2 ** (attempt - 1))
        : told * (1 + Math.random() * this.jitter);
    if (waited + (told ?? wait) > this.maxWait) {
      return null;
    }
    return Math.min(wait, Math.max(told ?? 0, this.maxWait - waited));
  }

  /** Seconds to wait before trying a connection again that could not be made; null to give
   * up. No answer came, so the backoff alone decides. */
  connectDelay(attempt: number, waited: number): number | null {
    if (attempt >= this.maxAttempts) {
      return null;
    }
    const wait = Math.min(this.maxBackoff, this.backoff * 2 ** (attempt - 1));
    return waited + wait > this.maxWait ? null : wait;
  }
}
