/** RetryPolicy and errorFor alone (no server): the Python client's rules, case by case. */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  BadRequest,
  errorFor,
  NotFound,
  RateLimited,
  RetryPolicy,
  retryAfterSeconds,
  ServerError,
  Unauthorized,
  Unavailable,
} from "../src/index.js";

function answer(status: number, retryAfter?: string): Response {
  const headers = retryAfter === undefined ? undefined : { "Retry-After": retryAfter };
  return new Response(null, { status, headers });
}

const EXACT = new RetryPolicy({ jitter: 0 });

describe("Retry-After", () => {
  test("is delta-seconds or an HTTP date", () => {
    assert.equal(retryAfterSeconds(new Headers({ "Retry-After": "3" })), 3);
    const soon = new Date(Date.now() + 10_000).toUTCString();
    const seconds = retryAfterSeconds(new Headers({ "Retry-After": soon }));
    assert.ok(seconds !== null && seconds > 8 && seconds <= 10, String(seconds));
    const past = new Date(Date.now() - 60_000).toUTCString();
    assert.equal(retryAfterSeconds(new Headers({ "Retry-After": past })), 0);
  });

  test("is null when absent or unreadable", () => {
    assert.equal(retryAfterSeconds(new Headers()), null);
    assert.equal(retryAfterSeconds(new Headers({ "Retry-After": "soon" })), null);
    assert.equal(retryAfterSeconds(new Headers({ "Retry-After": "-5" })), null);
  });
});

describe("RetryPolicy.delay", () => {
  test("429 and 503 wait their Retry-After; no other status is retried", () => {
    assert.equal(EXACT.delay(answer(429, "2"), 1, 0), 2);
    assert.equal(EXACT.delay(answer(503, "5"), 1, 0), 5);
    for (const status of [400, 404, 409, 422, 500, 502, 504]) {
      assert.equal(EXACT.delay(answer(status, "1"), 1, 0), null, String(status));
    }
  });

  test("jitter adds at most its fraction to a Retry-After", () => {
    const jittery = new RetryPolicy({ jitter: 0.5 });
    for (let i = 0; i < 50; i++) {
      const wait = jittery.delay(answer(429, "2"), 1, 0);
      assert.ok(wait !== null && wait >= 2 && wait <= 3, String(wait));
    }
  });

  test("without Retry-After the backoff doubles up to maxBackoff", () => {
    const policy = new RetryPolicy({ backoff: 0.5, maxBackoff: 3, maxAttempts: 10, maxWait: 100 });
    const waits = [1, 2, 3, 4, 5].map((attempt) => policy.delay(answer(503), attempt, 0));
    assert.deepEqual(waits, [0.5, 1, 2, 3, 3]);
  });

  test("gives up after maxAttempts, and rather than wait past maxWait", () => {
    const policy = new RetryPolicy({ maxAttempts: 3, maxWait: 10, jitter: 0 });
    assert.equal(policy.delay(answer(429, "1"), 2, 0), 1);
    assert.equal(policy.delay(answer(429, "1"), 3, 0), null);
    assert.equal(policy.delay(answer(429, "4"), 1, 7), null);
    assert.equal(policy.delay(answer(429, "3"), 1, 7), 3);
    assert.equal(RetryPolicy.never().delay(answer(429, "1"), 1, 0), null);
  });

  test("a call may narrow the statuses retried (startJob: 429 only)", () => {
    const only429 = new Set([429]);
    assert.equal(EXACT.delay(answer(429, "1"), 1, 0, only429), 1);
    assert.equal(EXACT.delay(answer(503, "1"), 1, 0, only429), null);
  });

  test("bad settings are refused", () => {
    assert.throws(() => new RetryPolicy({ maxAttempts: 0 }), RangeError);
    assert.throws(() => new RetryPolicy({ maxWait: -1 }), RangeError);
  });
});

describe("errorFor", () => {
  const body = (message: string) => ({ error: "code", message, detail: null });

  test("each status has its kind, with the service's message and code", () => {
    const cases: [number, new (...args: never[]) => Error][] = [
      [400, BadRequest],
      [401, Unauthorized],
      [403, Unauthorized],
      [404, NotFound],
      [409, BadRequest],
      [429, RateLimited],
      [500, ServerError],
      [503, Unavailable],
      [504, ServerError],
    ];
    for (const [status, kind] of cases) {
      const error = errorFor(answer(status, "7"), body(`said ${status}`));
      assert.ok(error instanceof kind, `${status}: ${error.name}`);
      const said = [error.status, error.error, error.message];
      assert.deepEqual(said, [status, "code", `said ${status}`]);
    }
    const limited = errorFor(answer(429, "7"), body("full"));
    assert.ok(limited instanceof RateLimited && limited.retryAfter === 7);
  });

  test("a body that is not the service's JSON still gives a message", () => {
    const proxy = errorFor(answer(502), "Bad Gateway from nginx\n");
    assert.equal(proxy.message, "Bad Gateway from nginx");
    const bare = new Response(null, { status: 502, statusText: "Bad Gateway" });
    assert.equal(errorFor(bare, "").message, "Bad Gateway");
    assert.equal(errorFor(answer(500), undefined).message, "HTTP 500");
  });
});
