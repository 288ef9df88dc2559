/**
 * The client against a real vae-service (`vae serve` with the shipped models, real HTTP, real
 * ONNX Runtime; training through the embedded job backend).
 */

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  BadRequest,
  ConnectionFailed,
  JobFailed,
  NotFound,
  RateLimited,
  RequestTimeout,
  RetryPolicy,
  Unauthorized,
  VaeClient,
  VaeError,
  type Job,
} from "../src/index.js";
import { freePort, startService, type Service } from "./server.js";

const TINY_JOB = {
  epochs: 1,
  hidden: [16],
  latent_dim: 2,
  batch_size: 16,
  holdout: 8,
  eval_k: 2,
  quality: false,
};

/** An .npy file of `count` random uint8 images `size` x `size`. */
function npyImages(count: number, size: number): Uint8Array {
  let header = `{'descr': '|u1', 'fortran_order': False, 'shape': (${count}, ${size}, ${size}), }`;
  header = header.padEnd(Math.ceil((10 + header.length + 1) / 64) * 64 - 10 - 1) + "\n";
  const preamble = new Uint8Array([0x93, ...Buffer.from("NUMPY"), 1, 0, header.length, 0]);
  const pixels = Uint8Array.from({ length: count * size * size }, (_, i) => (i * 37) % 256);
  return new Uint8Array(Buffer.concat([preamble, Buffer.from(header, "latin1"), pixels]));
}

function isPng(base64: string): boolean {
  return Buffer.from(base64, "base64").subarray(1, 4).toString("latin1") === "PNG";
}

/** The rejection of `promise`, which must be a `kind`. */
async function rejection<E extends Error>(
  promise: Promise<unknown>,
  kind: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof kind, `expected a ${kind.name}, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected a ${kind.name}, but it resolved`);
}

describe("the client against vae serve", () => {
  let service: Service;
  let vae: VaeClient;
  let admin: VaeClient;

  before(async () => {
    service = await startService({ VAE_RELOAD_INTERVAL_S: "8" });
    vae = new VaeClient(service.url);
    admin = new VaeClient({ baseUrl: service.url, token: service.token });
  });
  after(async () => service?.stop());

  test("sample gives seeded, reproducible images and their latents", async () => {
    const drawn = await vae.sample({ n: 4, seed: 1, format: "array" });
    assert.equal(drawn.model, "mnist");
    const arrays = drawn.arrays as number[][][][];
    assert.deepEqual([arrays.length, arrays[0]?.length, arrays[0]?.[0]?.length], [4, 1, 28]);
    assert.equal(drawn.latents?.[0]?.length, 32);
    const again = await vae.sample({ n: 4, seed: 1, format: "array" });
    assert.deepEqual(again.arrays, drawn.arrays);
    const pngs = await vae.sample({ n: 2, seed: 1 });
    assert.ok(pngs.images?.length === 2 && pngs.images.every(isPng));
  });

  test("encode gives each image's posterior, and seeded draws when asked", async () => {
    const images = (await vae.sample({ n: 2, seed: 3, format: "array" })).arrays ?? [];
    const encoded = await vae.encode({ arrays: images, samples: 3, seed: 5 });
    assert.equal(encoded.latents.length, 2);
    const first = encoded.latents[0];
    assert.equal(first?.mu?.length, 32);
    assert.ok(first?.sigma?.every((s) => s > 0));
    assert.deepEqual([first?.z?.length, first?.z?.[0]?.length], [3, 32]);
  });

  test("decode turns latents into PNGs, or arrays", async () => {
    const zero = new Array<number>(32).fill(0);
    const decoded = await vae.decode({ latents: [zero, zero] });
    assert.ok(decoded.images?.length === 2 && decoded.images.every(isPng));
    const arrays = await vae.decode({ latents: [zero], format: "array" });
    assert.equal((arrays.arrays as number[][][][])[0]?.[0]?.length, 28);
  });

  test("interpolate decodes a path from one latent to another", async () => {
    const [start, end] = (await vae.sample({ n: 2, seed: 9 })).latents ?? [];
    assert.ok(start && end);
    const path = await vae.interpolate({
      start: { latent: start },
      end: { latent: end },
      steps: 5,
      method: "lerp",
    });
    assert.equal(path.latents?.length, 5);
    assert.equal(path.images?.length, 5);
    path.latents?.[0]?.forEach((value, i) => assert.ok(Math.abs(value - (start[i] ?? NaN)) < 1e-5));
  });

  test("models lists the shipped models; model describes one", async () => {
    const listing = await vae.models();
    assert.equal(listing.default, "mnist");
    assert.ok(listing.models.some((model) => model.name === "mnist"));
    const mnist = await vae.model("mnist");
    assert.equal(mnist.default_version, 1);
    assert.equal(mnist.versions[0]?.manifest.name, "mnist");
  });

  test("an unknown model is a NotFound with the service's message and code", async () => {
    const error = await rejection(vae.model("nope"), NotFound);
    assert.equal(error.status, 404);
    assert.equal(error.error, "model_not_found");
    assert.match(error.message, /no model named 'nope'/);
    const sampled = await rejection(vae.sample({ n: 1, model: "nope" }), NotFound);
    assert.ok(sampled instanceof BadRequest && sampled instanceof VaeError);
  });

  test("invalid input is a BadRequest saying what was wrong, sent once", async () => {
    const error = await rejection(vae.sample({ n: 0 }), BadRequest);
    assert.equal(error.status, 422);
    assert.equal(error.error, "invalid_request");
    assert.match(error.message, /^n: /);
    assert.ok(Array.isArray(error.detail));
  });

  test("admin calls without the token are Unauthorized", async () => {
    const error = await rejection(vae.setDefault("mnist", 1), Unauthorized);
    assert.equal(error.status, 401);
    assert.match(error.message, /token/);
    await rejection(vae.deleteVersion("mnist", 1), Unauthorized);
    await rejection(vae.startJob({ dataset: "x", name: "x" }), Unauthorized);
  });

  test("setDefault and deleteVersion change the served versions", async () => {
    const mnist = await admin.setDefault("mnist", 1);
    assert.equal(mnist.default_version, 1);
    const missing = await rejection(admin.setDefault("mnist", 99), NotFound);
    assert.match(missing.message, /no version 99/);
    await admin.deleteVersion("mnist-hvae", 1); // its only version: the model goes with it
    await rejection(admin.model("mnist-hvae"), NotFound);
  });

  test("datasets: upload, list, read; a taken name is a 409", async () => {
    const manifest = await admin.uploadDataset("shapes", npyImages(48, 8));
    assert.deepEqual([manifest.name, manifest.count, manifest.height], ["shapes", 48, 8]);
    assert.ok((await vae.datasets()).some((dataset) => dataset.name === "shapes"));
    assert.equal((await vae.dataset("shapes")).sha256, manifest.sha256);
    const taken = await rejection(admin.uploadDataset("shapes", npyImages(4, 8)), BadRequest);
    assert.deepEqual([taken.status, taken.error], [409, "dataset_exists"]);
    await admin.deleteDataset("shapes");
    await rejection(vae.dataset("shapes"), NotFound);
  });

  test("jobs: a tiny model is trained, waited for and served", async () => {
    await admin.uploadDataset("tiny", npyImages(48, 8));
    const started = await admin.startJob({ dataset: "tiny", name: "tiny", config: TINY_JOB });
    assert.ok(["queued", "running"].includes(started.status));
    assert.ok((await vae.jobs()).some((job) => job.id === started.id));
    const seen: Job[] = [];
    for await (const snapshot of vae.follow(started.id, { interval: 0.2 })) {
      seen.push(snapshot);
    }
    assert.equal(seen.at(-1)?.status, "succeeded");
    assert.ok(seen.slice(0, -1).every((job) => ["queued", "running"].includes(job.status)));
    const done = await admin.wait(started.id, { timeout: 240, interval: 0.2 });
    assert.equal(done.status, "succeeded", done.error ?? "");
    assert.equal(done.result?.["model"], "tiny");
    const drawn = await vae.sample({ n: 1, model: "tiny", format: "array" });
    assert.deepEqual([drawn.version, (drawn.arrays as number[][][][])[0]?.[0]?.length], [1, 8]);

    // the server looks at the repository every 8 s: wait returns once it answers with v2
    const second = await admin.startJob({ dataset: "tiny", name: "tiny", config: TINY_JOB });
    const moved = await admin.wait(second.id, { timeout: 240, interval: 0.2 });
    assert.equal(moved.result?.["version"], 2);
    const answered: number[] = [];
    for (let i = 0; i < 20; i++) {
      answered.push((await vae.sample({ n: 1, model: "tiny" })).version);
    }
    assert.deepEqual(answered, new Array<number>(20).fill(2));
  });

  test("jobs: a cancelled job makes wait reject with JobFailed", async () => {
    await admin.uploadDataset("long", npyImages(48, 8));
    const config = { ...TINY_JOB, epochs: 1000 };
    const started = await admin.startJob({ dataset: "long", name: "long", config });
    const cancelled: Job = await admin.cancelJob(started.id);
    assert.equal(cancelled.id, started.id);
    const failed = await rejection(admin.wait(started.id, { timeout: 120 }), JobFailed);
    assert.equal(failed.job.status, "cancelled");
    assert.equal((await vae.job(started.id)).status, "cancelled");
    await rejection(vae.job("no-such-job"), NotFound);
  });

  test("no answer within the timeout is a RequestTimeout", async () => {
    const hasty = new VaeClient({ baseUrl: service.url, timeout: 0.001 });
    await rejection(hasty.sample({ n: 64, seed: 1 }), RequestTimeout);
  });

  test("a caller's abort stops the call with the caller's reason", async () => {
    const controller = new AbortController();
    controller.abort(new Error("left the page"));
    await assert.rejects(vae.models({ signal: controller.signal }), /left the page/);
  });
});

describe("connections", () => {
  test("nothing listening, retries spent: ConnectionFailed", async () => {
    const port = await freePort();
    const fast = new RetryPolicy({ maxAttempts: 2, backoff: 0.01 });
    const nowhere = new VaeClient({ baseUrl: `http://127.0.0.1:${port}`, retry: fast });
    const error = await rejection(nowhere.models(), ConnectionFailed);
    assert.equal(error.status, null);
    assert.match(error.message, /could not be reached/);
  });

  test("a service that starts listening later is reached by retrying the connection", async () => {
    const port = await freePort();
    const patient = new RetryPolicy({ maxAttempts: 200, maxWait: 120, maxBackoff: 0.2 });
    const early = new VaeClient({ baseUrl: `http://127.0.0.1:${port}`, retry: patient });
    const listing = early.models(); // sent before anything listens on the port
    const service = await startService({}, port);
    try {
      assert.equal((await listing).default, "mnist");
    } finally {
      await service.stop();
    }
  });
});

describe("a full batch queue", () => {
  // A decoder queue of one request of 4 samples, each batch held 50 ms: concurrent sample
  // requests overflow it (429 with Retry-After), as in tests/integration/test_client.py.
  let tight: Service;

  before(async () => {
    tight = await startService({
      VAE_MAX_QUEUE: "4",
      VAE_MAX_ITEMS: "4",
      VAE_MAX_DELAY_MS: "50",
      VAE_DISPATCH_WHEN_IDLE: "false",
    });
  });
  after(async () => tight?.stop());

  async function rejections(): Promise<number> {
    const text = await (await fetch(`${tight.url}/metrics`)).text();
    return text
      .split("\n")
      .filter((line) => line.startsWith("vae_rejections_total{"))
      .filter((line) => line.includes('reason="queue_full"'))
      .reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
  }

  test("without retries, a 429 is a RateLimited with its Retry-After", async () => {
    const client = new VaeClient({ baseUrl: tight.url, retry: null });
    const answers = await Promise.allSettled(
      Array.from({ length: 6 }, () => client.sample({ n: 4, seed: 3 })),
    );
    const errors = answers.flatMap((a) => (a.status === "rejected" ? [a.reason as unknown] : []));
    assert.ok(errors.length > 0, "six requests of 4 samples should overflow a queue of 4");
    assert.ok(answers.some((a) => a.status === "fulfilled"));
    for (const error of errors) {
      assert.ok(error instanceof RateLimited, String(error));
      assert.deepEqual([error.status, error.error], [429, "queue_full"]);
      assert.ok(error.retryAfter !== null && error.retryAfter >= 1);
    }
  });

  test("with retries, every request succeeds once the queue drains", async () => {
    const before = await rejections();
    const patient = new RetryPolicy({ maxAttempts: 20, maxWait: 60, jitter: 1 });
    const client = new VaeClient({ baseUrl: tight.url, retry: patient });
    const drawn = await Promise.all(
      Array.from({ length: 6 }, (_, seed) => client.sample({ n: 4, seed, format: "array" })),
    );
    assert.deepEqual(
      drawn.map((d) => d.arrays?.length),
      [4, 4, 4, 4, 4, 4],
    );
    assert.ok((await rejections()) > before, "the queue did overflow: retries ran");
  });
});
