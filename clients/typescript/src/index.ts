/**
 * vae-client: a typed TypeScript client of vae-service.
 *
 *     import { VaeClient } from "vae-client";
 *     const vae = new VaeClient("http://127.0.0.1:8000");
 *     const drawn = await vae.sample({ n: 4, seed: 1 });   // base64 PNGs and their latents
 *
 * The request and response types are generated from the service's openapi.json (`paths`,
 * `components`); errors are typed (`VaeError` and its kinds); 429 and 503 are retried after their
 * Retry-After, as the Python client does (`RetryPolicy`).
 */

export * from "./client.js";
export * from "./errors.js";
export * from "./retry.js";
export type { components, operations, paths } from "./schema.js";
