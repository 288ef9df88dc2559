/**
 * `VaeClient`: the vae-service API over openapi-fetch, with the request and response types
 * generated from openapi.json, typed errors and the Python client's retry rules.
 */

import createClient, { type Client } from "openapi-fetch";

import {
  ConnectionFailed,
  errorFor,
  JobFailed,
  RequestTimeout,
  WaitTimeout,
  type Job,
} from "./errors.js";
import { RetryPolicy } from "./retry.js";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
export type SampleRequest = Schemas["SampleRequest"];
export type EncodeRequest = Schemas["EncodeRequest"];
export type EncodeResponse = Schemas["EncodeResponse"];
export type DecodeRequest = Schemas["DecodeRequest"];
export type InterpolateRequest = Schemas["InterpolateRequest"];
export type Endpoint = Schemas["Endpoint"];
export type ImagesResponse = Schemas["ImagesResponse"];
export type JobRequest = Schemas["JobRequest"];
export type TrainConfig = Schemas["TrainConfig"];
export type CancelOutcome = Schemas["CancelOutcome"];

/** One version of a model, as `GET /models/{name}` lists it (openapi.json leaves it untyped). */
export interface ModelVersion {
  version: number;
  loaded: boolean;
  provider: string | null;
  load_error: string | null;
  kind: { name: string; spatial: boolean; conditional: boolean; [key: string]: unknown };
  manifest: { name: string; version: number; kind: string; [key: string]: unknown };
}

/** `GET /models/{name}`: a model, the version that answers for it and every version. */
export interface ModelInfo {
  name: string;
  default_version: number | null;
  versions: ModelVersion[];
}

/** `GET /models`: every model, and the one that answers when a request names none. */
export interface ModelListing {
  default: string;
  models: ModelInfo[];
}

/** A stored dataset's manifest (`GET /datasets/{name}`). */
export interface DatasetManifest {
  name: string;
  format: string;
  count: number;
  shape: number[];
  channels: number;
  height: number;
  width: number;
  sha256: string;
  created_at: string;
  [key: string]: unknown;
}

/** How a `VaeClient` talks to the service. */
export interface ClientOptions {
  /** The service's URL; default http://127.0.0.1:8000 (a page served by it: `location.origin`). */
  baseUrl?: string;
  /** The admin token, sent as `Authorization: Bearer` on admin calls (uploads, jobs, defaults). */
  token?: string;
  /** How 429 and 503 answers, and connections that could not be made, are retried (null:
   * never). Default `new RetryPolicy()`. */
  retry?: RetryPolicy | null;
  /** Seconds to wait for each answer before a `RequestTimeout`; default 30. */
  timeout?: number;
  /** Headers sent on every request. */
  headers?: Record<string, string>;
  /** The fetch to use (default: the global one). */
  fetch?: (input: Request) => Promise<Response>;
}

/** What any call takes besides its arguments: a signal to abort it (and its retries). */
export interface CallOptions {
  signal?: AbortSignal;
}

/** A dataset's bytes: a zip of images, an .npz, an .npy or MNIST IDX files. */
export type DatasetBody = Blob | ArrayBuffer | Uint8Array;

type Answer<D> = { data?: D; error?: unknown; response: Response };
type Attempt<D> = (signal: AbortSignal) => Promise<Answer<D>>;

const FINAL = new Set(["succeeded", "failed", "cancelled"]);

/** Error codes (Node's) of a connection that could not be made: the request was never sent. */
const NOT_CONNECTED = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function notConnected(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown; errors?: { code?: unknown }[] } }).cause;
  const codes = [cause?.code, ...(cause?.errors ?? []).map((e) => e.code)];
  return codes.some((code) => typeof code === "string" && NOT_CONNECTED.has(code));
}

function sleep(seconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(done, seconds * 1000);
    function done(): void {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }
    function aborted(): void {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener("abort", aborted, { once: true });
  });
}

/**
 * A client of one vae-service. Every method sends one request (retried as `retry` says) and
 * resolves to the answer's JSON, typed from openapi.json, or rejects with a `VaeError`:
 * `BadRequest`, `Unauthorized`, `NotFound`, `RateLimited`, `Unavailable`, `ServerError`, or
 * `ConnectionFailed` / `RequestTimeout` when no answer came. `raw` is the openapi-fetch client
 * itself, for any other route.
 */
export class VaeClient {
  /** The typed openapi-fetch client underneath (no retries, no typed errors). */
  readonly raw: Client<paths>;
  readonly retry: RetryPolicy;
  readonly timeout: number;
  private readonly admin: Record<string, string>;

  constructor(options: ClientOptions | string = {}) {
    const settings = typeof options === "string" ? { baseUrl: options } : options;
    const retry = settings.retry === undefined ? new RetryPolicy() : settings.retry;
    this.retry = retry ?? RetryPolicy.never();
    this.timeout = settings.timeout ?? 30;
    this.admin = settings.token ? { Authorization: `Bearer ${settings.token}` } : {};
    this.raw = createClient<paths>({
      baseUrl: (settings.baseUrl ?? "http://127.0.0.1:8000").replace(/\/+$/, ""),
      ...(settings.headers ? { headers: settings.headers } : {}),
      ...(settings.fetch ? { fetch: settings.fetch } : {}),
    });
  }

  // -- inference --------------------------------------------------------------------------------

  /** `n` images drawn from the prior N(0, temperature² I) and decoded, with their latents; the
   * same `seed` gives the same images. `format`: `png` (base64, default) or `array`. */
  sample(request: SampleRequest = {}, options: CallOptions = {}): Promise<ImagesResponse> {
    return this.send((signal) => this.raw.POST("/sample", { body: request, signal }), options);
  }

  /** Per image (base64 PNG/JPEG in `images`, or pixel arrays in `arrays`) its posterior `mu` and
   * `sigma`, and `samples` draws z ~ q(z|x) when asked. */
  encode(request: EncodeRequest, options: CallOptions = {}): Promise<EncodeResponse> {
    const attempt = (signal: AbortSignal) => this.raw.POST("/encode", { body: request, signal });
    return this.send(attempt, options) as Promise<EncodeResponse>; // JSON asked: JSON answered
  }

  /** Latent vectors to images (`format`: png, array). */
  decode(request: DecodeRequest, options: CallOptions = {}): Promise<ImagesResponse> {
    const attempt = (signal: AbortSignal) => this.raw.POST("/decode", { body: request, signal });
    return this.send(attempt, options) as Promise<ImagesResponse>; // JSON asked: JSON answered
  }

  /** A path of `steps` points from `start` to `end` (each an image, a pixel array or a latent),
   * decoded; `method` is `lerp` or `slerp`. */
  interpolate(request: InterpolateRequest, options: CallOptions = {}): Promise<ImagesResponse> {
    return this.send((signal) => this.raw.POST("/interpolate", { body: request, signal }), options);
  }

  // -- models -------------------------------------------------------------------------------------

  /** Every model with its versions and manifests, and the default model's name. */
  async models(options: CallOptions = {}): Promise<ModelListing> {
    const data = await this.send((signal) => this.raw.GET("/models", { signal }), options);
    return data as ModelListing;
  }

  /** One model: its versions, manifests, metrics and the execution provider in use. */
  async model(name: string, options: CallOptions = {}): Promise<ModelInfo> {
    const path = { name: name };
    const data = await this.send(
      (signal) => this.raw.GET("/models/{name}", { params: { path }, signal }),
      options,
    );
    return data as ModelInfo;
  }

  /** Makes `version` the one that answers for model `name` (admin); the model as it is now. */
  async setDefault(name: string, version: number, options: CallOptions = {}): Promise<ModelInfo> {
    const data = await this.send(
      (signal) =>
        this.raw.POST("/models/{name}/default", {
          params: { path: { name: name } },
          body: { version },
          headers: this.admin,
          signal,
        }),
      options,
    );
    return data as ModelInfo;
  }

  /** Deletes a version of model `name` (admin); the default one only when it is the last. */
  async deleteVersion(name: string, version: number, options: CallOptions = {}): Promise<void> {
    const path = { name: name, version };
    await this.send(
      (signal) =>
        this.raw.DELETE("/models/{name}/versions/{version}", {
          params: { path },
          headers: this.admin,
          signal,
        }),
      options,
    );
  }

  // -- datasets -----------------------------------------------------------------------------------

  /** Every stored dataset's manifest. */
  async datasets(options: CallOptions = {}): Promise<DatasetManifest[]> {
    const data = await this.send((signal) => this.raw.GET("/datasets", { signal }), options);
    return (data as { datasets: DatasetManifest[] }).datasets;
  }

  /** A stored dataset's manifest. */
  async dataset(name: string, options: CallOptions = {}): Promise<DatasetManifest> {
    const path = { name: name };
    const data = await this.send(
      (signal) => this.raw.GET("/datasets/{name}", { params: { path }, signal }),
      options,
    );
    return data as DatasetManifest;
  }

  /** Stores `body` as dataset `name` (admin): a zip of images (resized to `resize` [width,
   * height] and converted to `channels`), .npz (`images`, optional `labels`), .npy or MNIST IDX
   * files. Names are write-once (409: delete first). */
  async uploadDataset(
    name: string,
    body: DatasetBody,
    settings: { resize?: [number, number]; channels?: number } & CallOptions = {},
  ): Promise<DatasetManifest> {
    const query = {
      ...(settings.resize ? { resize: `${settings.resize[0]}x${settings.resize[1]}` } : {}),
      ...(settings.channels !== undefined ? { channels: settings.channels } : {}),
    };
    const data = await this.send(
      (signal) =>
        this.raw.PUT("/datasets/{name}", {
          params: { path: { name: name }, query },
          body: body as unknown as string, // sent as it is: the raw bytes are the dataset
          bodySerializer: (bytes: unknown) => bytes as BodyInit,
          headers: { ...this.admin, "Content-Type": "application/octet-stream" },
          signal,
        }),
      callOptions(settings),
    );
    return data as DatasetManifest;
  }

  /** Deletes a stored dataset (admin); 409 while a job trains on it. */
  async deleteDataset(name: string, options: CallOptions = {}): Promise<void> {
    const path = { name: name };
    await this.send(
      (signal) =>
        this.raw.DELETE("/datasets/{name}", { params: { path }, headers: this.admin, signal }),
      options,
    );
  }

  // -- jobs ---------------------------------------------------------------------------------------

  /** Queues training of model `name` on `dataset` with `config` (admin). Only a 429 is retried:
   * after a 503 the job may be queued already, and sending it again would train it twice. */
  startJob(request: JobRequest, options: CallOptions = {}): Promise<Job> {
    const attempt = (signal: AbortSignal) =>
      this.raw.POST("/jobs", { body: request, headers: this.admin, signal });
    return this.send(attempt, options, new Set([429]));
  }

  /** Every job, newest first. */
  jobs(options: CallOptions = {}): Promise<Job[]> {
    return this.send((signal) => this.raw.GET("/jobs", { signal }), options);
  }

  /** The job's current snapshot. */
  job(id: string, options: CallOptions = {}): Promise<Job> {
    const path = { job_id: id };
    return this.send(
      (signal) => this.raw.GET("/jobs/{job_id}", { params: { path }, signal }),
      options,
    );
  }

  /** Cancels a queued job or stops a running one (admin); the job as it is then. */
  cancelJob(id: string, options: CallOptions = {}): Promise<Job> {
    const path = { job_id: id };
    return this.send(
      (signal) =>
        this.raw.POST("/jobs/{job_id}/cancel", { params: { path }, headers: this.admin, signal }),
      options,
    ) as Promise<Job>;
  }

  /** The job's snapshots as they change, polled every `interval` seconds (default 0.5), until
   * it ends (the last one yielded is final). */
  async *follow(
    id: string,
    settings: { interval?: number } & CallOptions = {},
  ): AsyncGenerator<Job, void, undefined> {
    let last: string | undefined;
    for (;;) {
      const job = await this.job(id, callOptions(settings));
      const seen = JSON.stringify(job);
      if (seen !== last) {
        yield job;
        last = seen;
      }
      if (FINAL.has(job.status)) {
        return;
      }
      await sleep(settings.interval ?? 0.5, settings.signal);
    }
  }

  /**
   * Waits until the job has succeeded and, for a job that makes its version the default, until
   * this server answers with that version; resolves to the job. Rejects with `JobFailed` if it
   * failed or was cancelled, `WaitTimeout` after `timeout` seconds (default 600), polling every
   * `interval` seconds (default 0.5).
   */
  async wait(
    id: string,
    settings: { timeout?: number; interval?: number } & CallOptions = {},
  ): Promise<Job> {
    const timeout = settings.timeout ?? 600;
    const interval = settings.interval ?? 0.5;
    const deadline = Date.now() + timeout * 1000;
    const pause = async (job: Job, waitingFor?: string): Promise<void> => {
      const left = (deadline - Date.now()) / 1000;
      if (left <= 0) {
        throw new WaitTimeout(job, timeout, waitingFor);
      }
      await sleep(Math.min(interval, left), settings.signal);
    };
    for (;;) {
      const job = await this.job(id, callOptions(settings));
      if (job.status === "failed" || job.status === "cancelled") {
        throw new JobFailed(job);
      }
      if (job.status === "succeeded") {
        const version = job.result?.["version"];
        const served = job.make_default === false || job.result?.["default_error"];
        if (served || typeof version !== "number") {
          return job;
        }
        const name = String(job.result?.["model"] ?? job.name);
        while (((await this.model(name, callOptions(settings))).default_version ?? 0) < version) {
          await pause(job, `succeeded, but version ${version} is not served`);
        }
        return job;
      }
      await pause(job);
    }
  }

  // -- sending, with retries --------------------------------------------------------------

  /** Sends `attempt` until it is answered with a success or an error not worth retrying (thrown,
   * typed); `only` narrows the statuses retried. */
  private async send<D>(
    attempt: Attempt<D>,
    options: CallOptions,
    only?: ReadonlySet<number>,
  ): Promise<D> {
    let waited = 0;
    for (let count = 1; ; count++) {
      let answer: Answer<D>;
      try {
        answer = await attempt(this.signal(options.signal));
      } catch (error) {
        const wait = this.failed(error, count, waited, options.signal);
        await sleep(wait, options.signal);
        waited += wait;
        continue;
      }
      if (answer.response.ok) {
        return answer.data as D;
      }
      const wait = this.retry.delay(answer.response, count, waited, only);
      if (wait === null) {
        throw errorFor(answer.response, answer.error);
      }
      await sleep(wait, options.signal);
      waited += wait;
    }
  }

  /** The seconds to wait before trying again after `error` (no answer came), or throws the
   * error to give: the caller's abort as it is, RequestTimeout, ConnectionFailed. */
  private failed(error: unknown, count: number, waited: number, caller?: AbortSignal): number {
    if (caller?.aborted) {
      throw caller.reason;
    }
    if (error instanceof DOMException && error.name === "TimeoutError") {
      const message = `no answer within the timeout (${this.timeout} s)`;
      throw new RequestTimeout(message, null, null, null, { cause: error });
    }
    if (!(error instanceof TypeError)) {
      throw error; // not fetch's: a fault of this program
    }
    const wait = notConnected(error) ? this.retry.connectDelay(count, waited) : null;
    if (wait === null) {
      const message = `the service could not be reached: ${String(error.cause ?? error)}`;
      throw new ConnectionFailed(message, null, null, null, { cause: error });
    }
    return wait;
  }

  /** The signal of one attempt: its timeout, and the caller's abort. */
  private signal(caller?: AbortSignal): AbortSignal {
    const timeout = AbortSignal.timeout(this.timeout * 1000);
    return caller ? AbortSignal.any([timeout, caller]) : timeout;
  }
}

function callOptions(settings: CallOptions): CallOptions {
  return settings.signal ? { signal: settings.signal } : {};
}
