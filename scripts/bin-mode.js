#!/usr/bin/env node
// tsc writes the apps' entry points without the executable bit, and `npm ci` could not set it
// (the files did not exist yet when it linked node_modules/.bin): set it after every build, so
// `npx pgferry` works on a fresh clone after `npm ci && npm run build`.
const { chmodSync, existsSync } = require('node:fs');
const { join } = require('node:path');

for (const app of ['controller', 'capture', 'applier']) {
  const main = join(__dirname, '..', 'apps', app, 'dist', 'main.js');
  if (existsSync(main)) chmodSync(main, 0o755);
}
