/** src/schema.d.ts is what `npm run generate` makes of the repository's openapi.json. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

interface Generator {
  generate(): Promise<string>;
  TARGET: string;
  FIX: string;
}

test("src/schema.d.ts is generated from the current openapi.json", async () => {
  const script = new URL("../../scripts/generate.mjs", import.meta.url).href;
  const { generate, TARGET, FIX } = (await import(script)) as Generator;
  const committed = readFileSync(TARGET, "utf8");
  const current = await generate();
  assert.ok(committed === current, `src/schema.d.ts is out of date with openapi.json: ${FIX}`);
});
