// Validate a Teams app manifest offline against the official JSON schema bundled in
// @microsoft/app-manifest. Usage: node validate-manifest.mjs manifest.json
// Prints {"errors": [...]} and exits 0 when valid, 1 when not, 2 on a usage or load error.
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const file = process.argv[2];
if (!file) {
  console.error("usage: node validate-manifest.mjs manifest.json");
  process.exit(2);
}
try {
  const { AppManifestUtils } = require("@microsoft/app-manifest");
  const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
  const errors = await AppManifestUtils.validateAgainstSchema(manifest);
  console.log(JSON.stringify({ errors }));
  process.exit(errors.length === 0 ? 0 : 1);
} catch (e) {
  console.error(`validate-manifest: ${e && e.stack ? e.stack : e}`);
  process.exit(2);
}
