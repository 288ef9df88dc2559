/**
 * A real vae-service for the tests: `.venv/bin/python -m app.cli serve` from the repository
 * root on a free port, over a copy of the shipped models (tests may move defaults and delete
 * versions) and a dataset directory of its own, with an admin token; ready once
 * `/v2/health/ready` answers 200. As tests/support/processes.py starts it for pytest.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root (this file runs from clients/typescript/build/test). */
export const ROOT = resolve(fileURLToPath(new URL("../../../../", import.meta.url)));
export const TOKEN = "typescript-client-test-token";

export interface Service {
  url: string;
  token: string;
  /** The server's log so far (stdout and stderr). */
  log(): string;
  /** SIGTERM, then SIGKILL after 15 s; removes its directory. */
  stop(): Promise<void>;
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

function exited(process: ChildProcess): Promise<void> {
  return process.exitCode !== null || process.signalCode !== null
    ? Promise.resolve()
    : new Promise((done) => process.once("exit", () => done()));
}

async function ready(url: string, process: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (process.exitCode !== null) {
      throw new Error(`vae serve exited early (${process.exitCode}):\n${log().slice(-3000)}`);
    }
    try {
      const answer = await fetch(`${url}/v2/health/ready`, { signal: AbortSignal.timeout(2000) });
      if (answer.status === 200) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 200));
  }
  throw new Error(`vae serve was not ready within 60 s:\n${log().slice(-3000)}`);
}

/** Starts `vae serve` with the VAE_ settings `env` (besides the models, data and token), on
 * `port` (default a free one), and resolves once it is ready. `VAE_PYTHON` overrides the
 * interpreter (default the repository's .venv). */
export async function startService(
  env: Record<string, string> = {},
  port?: number,
): Promise<Service> {
  const dir = mkdtempSync(join(tmpdir(), "vae-ts-"));
  cpSync(join(ROOT, "models"), join(dir, "models"), { recursive: true });
  port ??= await freePort();
  const logFile = join(dir, "serve.log");
  const out = openSync(logFile, "w");
  const python = process.env["VAE_PYTHON"] ?? join(ROOT, ".venv", "bin", "python");
  const child = spawn(python, ["-m", "app.cli", "serve", "--port", String(port)], {
    cwd: ROOT,
    env: {
      ...process.env,
      VAE_MODELS_DIR: join(dir, "models"),
      VAE_DATA_DIR: join(dir, "data"),
      VAE_ADMIN_TOKEN: TOKEN,
      VAE_RELOAD_INTERVAL_S: "0.5",
      ...env,
    },
    stdio: ["ignore", out, out],
  });
  const log = () => readFileSync(logFile, "utf8");
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited(child);
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await ready(url, child, log);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, token: TOKEN, log, stop };
}
