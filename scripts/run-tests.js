#!/usr/bin/env node
// Runs the whole suite (unit and integration projects) with jest and ends with one plain line,
// "tests: N passed, N failed, N skipped", that any CI can read. Exit code: jest's, or 1 when no
// test ran at all (a suite that silently runs nothing must not pass).
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const dir = mkdtempSync(join(tmpdir(), 'pgferry-jest-'));
const out = join(dir, 'results.json');
const jest = require.resolve('jest/bin/jest');
const args = [jest, '--json', `--outputFile=${out}`, ...process.argv.slice(2)];
const run = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: join(__dirname, '..') });

let summary;
try {
  summary = JSON.parse(readFileSync(out, 'utf8'));
} catch {
  summary = null;
}
rmSync(dir, { recursive: true, force: true });
if (!summary) {
  console.log('tests: 0 passed, 1 failed (jest produced no results)');
  process.exit(run.status || 1);
}
const passed = summary.numPassedTests;
const failed = summary.numFailedTests + summary.numRuntimeErrorTestSuites;
const skipped = summary.numPendingTests + summary.numTodoTests;
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (passed + failed === 0) process.exit(1);
process.exit(failed > 0 ? 1 : (run.status ?? 1));
