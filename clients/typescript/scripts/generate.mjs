// `npm run generate`: src/schema.d.ts from the repository's openapi.json (openapi-typescript).
// `node scripts/generate.mjs --check` exits 1 when the committed file differs from what this
// would write. The header records openapi.json's sha256, which a pytest compares (no node needed
// there) so that whoever changes openapi.json is told to run `npm run generate`.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

export const SOURCE = fileURLToPath(new URL("../../../openapi.json", import.meta.url));
export const TARGET = fileURLToPath(new URL("../src/schema.d.ts", import.meta.url));
export const FIX = "run `npm run generate` in clients/typescript and commit src/schema.d.ts";

/** The text src/schema.d.ts should hold for the current openapi.json. */
export async function generate() {
  const document = readFileSync(SOURCE);
  const sha256 = createHash("sha256").update(document).digest("hex");
  // defaultNonNullable off: a field with a default is optional in a request body, as the
  // service treats it (openapi-typescript would otherwise make it required).
  const ast = await openapiTS(JSON.parse(document.toString("utf8")), {
    defaultNonNullable: false,
  });
  const header = [
    "/**",
    " * Generated from the repository's openapi.json by `npm run generate` (openapi-typescript):",
    " * do not edit. A test fails when openapi.json changes and this file is not regenerated.",
    ` * openapi.json sha256: ${sha256}`,
    " */",
    "",
  ].join("\n");
  return header + astToString(ast);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = await generate();
  if (process.argv.includes("--check")) {
    if (readFileSync(TARGET, "utf8") !== text) {
      console.error(`src/schema.d.ts is out of date with openapi.json: ${FIX}`);
      process.exit(1);
    }
  } else {
    writeFileSync(TARGET, text);
    console.log(`wrote ${TARGET}`);
  }
}
