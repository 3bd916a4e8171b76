// The package is "type": "module"; dist/cjs holds CommonJS, so it gets a package.json of its
// own that tells Node (and TypeScript) how to read its .js files.
import { writeFileSync } from "node:fs";

writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{ "type": "commonjs" }\n');
writeFileSync(new URL("../dist/esm/package.json", import.meta.url), '{ "type": "module" }\n');
