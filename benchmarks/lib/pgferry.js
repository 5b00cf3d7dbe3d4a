// What the benchmarks share: running pgferry's CLI as the user does.
const { spawn } = require('node:child_process');
const { join } = require('node:path');

/** The built CLI. */
const cli = join(__dirname, '..', '..', 'apps', 'controller', 'dist', 'main.js');

/**
 * Starts `pgferry migrate --spec <spec> --work-dir <workDir>`, stdout piped, stderr inherited
 * (or piped with `{ stderr: 'pipe' }`, where the caller reports the failure itself).
 * BENCH_NODE_ARGS (e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof') goes to the controller (and the
 * embedded broker in it) and, through PGFERRY_CHILD_NODE_ARGS, to the capture and applier.
 */
function spawnMigrate(spec, workDir, { stderr = 'inherit' } = {}) {
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  return spawn(process.execPath, [...nodeArgs, cli, 'migrate', '--spec', spec, '--work-dir', workDir], {
    stdio: ['ignore', 'pipe', stderr],
    env: { ...process.env, PGFERRY_CHILD_NODE_ARGS: nodeArgs.join(' ') },
  });
}

module.exports = { cli, spawnMigrate };
