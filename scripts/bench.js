#!/usr/bin/env node
// npm run bench -- <name> [options]: runs benchmarks/<name>.js. Without a name, lists them.
const { readdirSync } = require('node:fs');
const { join } = require('node:path');

const dir = join(__dirname, '..', 'benchmarks');
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.slice(0, -3));
const [name, ...rest] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  console.error(`usage: npm run bench -- <${names.join('|')}> [options]`);
  process.exit(name ? 2 : 0);
}
process.argv = [process.argv[0], join(dir, `${name}.js`), ...rest];
require(join(dir, `${name}.js`));
