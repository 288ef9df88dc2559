// The service's public HTTP API, called exactly as any other frontend would: JSON in, JSON out.

/** An answer other than 2xx, with the message the service wrote for a person. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** GET `path` (no body) or POST `body` as JSON; resolves to the decoded JSON answer. */
export async function api(path, body) {
  const init =
    body === undefined
      ? { headers: { accept: "application/json" } }
      : {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json" },
          body: JSON.stringify(body),
        };
  let reply;
  try {
    reply = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, `the service did not answer ${path}: ${error.message}`);
  }
  let data = null;
  try {
    data = await reply.json();
  } catch {
    data = null;
  }
  if (!reply.ok) {
    const message = data && data.message ? data.message : `${path} answered ${reply.status}`;
    throw new ApiError(reply.status, message);
  }
  return data;
}

/**
 * POSTs `body` (bytes: a .npy array, a video file) as `contentType` to `path` with `query`,
 * asking for `accept`; resolves to the 2xx Response, for its bytes and headers.
 */
export async function apiBytes(path, query, body, contentType, accept) {
  const url = `${path}?${new URLSearchParams(query)}`;
  let reply;
  try {
    reply = await fetch(url, { method: "POST", headers: { "content-type": contentType, accept }, body });
  } catch (error) {
    throw new ApiError(0, `the service did not answer ${path}: ${error.message}`);
  }
  if (!reply.ok) {
    let message = `${path} answered ${reply.status}`;
    try {
      const data = await reply.json();
      if (data && data.message) message = data.message;
    } catch {
      // not JSON: the status says it
    }
    throw new ApiError(reply.status, message);
  }
  return reply;
}

/**
 * Runs `task(value)` for the latest value only, for live controls such as sliders.
 *
 * `request(value)` waits `delayMs` after the last call (debounce), but no more than `maxWaitMs`
 * after the first value still waiting (so a slider dragged without pause still updates), keeps at
 * most one task in flight, and a newer value replaces one still waiting. Requests never pile up:
 * however fast a slider moves, the service sees one request at a time, for the newest position.
 * `onResult(result, value)` and `onError(error)` see the outcome of every task that ran;
 * `onStats(stats)` hears whenever the counts change.
 */
export function latestOnly(task, { delayMs, maxWaitMs = Infinity }, onResult, onError, onStats = () => {}) {
  const stats = { requested: 0, sent: 0, replaced: 0, inFlight: 0 };
  let pending = null; // { value } while a value waits
  let waitingSince = 0; // when the oldest value still waiting arrived
  let timer = null;

  async function flush() {
    timer = null;
    if (stats.inFlight > 0 || pending === null) return;
    const { value } = pending;
    pending = null;
    stats.inFlight = 1;
    stats.sent += 1;
    onStats(stats);
    try {
      onResult(await task(value), value);
    } catch (error) {
      onError(error);
    } finally {
      stats.inFlight = 0;
      onStats(stats);
      // A value that arrived while this task ran goes out now, unless its debounce still runs.
      if (pending !== null && timer === null) flush();
    }
  }

  return {
    stats,
    request(value) {
      stats.requested += 1;
      const now = performance.now();
      if (pending !== null) stats.replaced += 1;
      else waitingSince = now;
      pending = { value };
      onStats(stats);
      clearTimeout(timer);
      timer = setTimeout(flush, Math.max(0, Math.min(delayMs, waitingSince + maxWaitMs - now)));
    },
    /** Forgets a waiting value (a task already in flight still reports). */
    cancel() {
      clearTimeout(timer);
      timer = null;
      pending = null;
    },
  };
}
