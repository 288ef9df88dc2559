/**
 * The README's TypeScript example, as written there: type-checked against the built package
 * with `tsc --strict` (as a frontend would compile it) and run against a real `vae serve`. The
 * page it draws on is a minimal stand-in for the browser's `document` and `location`, which
 * records what the example appends.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { ROOT, startService } from "./server.js";

const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
const SECTION = "## Calling it from TypeScript";

/** The first ```ts block of the README's TypeScript section. */
function readmeExample(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf(SECTION);
  assert.ok(start >= 0, `README.md has no section "${SECTION}"`);
  const found = /```ts\n([\s\S]*?)```/.exec(readme.slice(start));
  assert.ok(found?.[1], `README.md's "${SECTION}" has no \`\`\`ts block`);
  return found[1];
}

interface Frame {
  tagName: string;
  src: string;
}

/** What the example may touch of a page: `location.origin`, `document.createElement` and
 * `document.body.append`. */
function page(origin: string): { appended: (Frame | string)[]; globals: Record<string, unknown> } {
  const appended: (Frame | string)[] = [];
  const document = {
    createElement: (tagName: string): Frame => ({ tagName, src: "" }),
    body: { append: (...nodes: (Frame | string)[]) => appended.push(...nodes) },
  };
  return { appended, globals: { document, location: { origin } } };
}

test("the README's TypeScript example compiles and draws the interpolation", async () => {
  // inside the package, so that `import ... from "vae-client"` resolves to it (self-reference)
  const dir = join(PACKAGE, "build", "readme");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "example.ts"), readmeExample());
  const tsc = join(PACKAGE, "node_modules", "typescript", "bin", "tsc");
  const options = ["--strict", "--target", "es2022", "--module", "nodenext"];
  const more = ["--lib", "es2022,dom", "--skipLibCheck", "--rootDir", dir, "--outDir", dir];
  await promisify(execFile)(process.execPath, [tsc, ...options, ...more, join(dir, "example.ts")], {
    cwd: PACKAGE,
  }).catch((error: { stdout?: string }) => {
    assert.fail(`the README example does not compile:\n${error.stdout ?? String(error)}`);
  });

  const service = await startService();
  const { appended, globals } = page(service.url);
  Object.assign(globalThis, globals);
  try {
    await import(pathToFileURL(join(dir, "example.js")).href);
  } finally {
    for (const name of Object.keys(globals)) {
      delete (globalThis as Record<string, unknown>)[name];
    }
    await service.stop();
  }
  assert.ok(appended.every((node) => typeof node !== "string"), `it showed: ${appended.join()}`);
  const frames = appended as Frame[];
  assert.equal(frames.length, 8);
  for (const frame of frames) {
    assert.equal(frame.tagName, "img");
    const png = Buffer.from(frame.src.replace("data:image/png;base64,", ""), "base64");
    assert.equal(png.subarray(1, 4).toString("latin1"), "PNG");
  }
});
