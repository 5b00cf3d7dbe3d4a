// CPU time of process trees, from /proc (Linux): less disturbed by a busy shared machine than
// wall time.
const { execFileSync } = require('node:child_process');
const { readdirSync, readFileSync } = require('node:fs');

let ticks = null;
const clockTicks = () =>
  (ticks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100);

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name, which may itself hold spaces.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime are fields 14-17 of stat(5); f[0] is field 3.
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

function children(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/**
 * User + system CPU seconds used so far by the processes `pids` and all their descendants,
 * including descendants that already exited and were waited for (counted in their parent).
 */
function treeCpuSeconds(pids) {
  let total = 0;
  const queue = [...pids];
  const seen = new Set();
  while (queue.length) {
    const pid = queue.shift();
    if (seen.has(pid)) continue;
    seen.add(pid);
    total += stat(pid);
    queue.push(...children(pid));
  }
  return total / clockTicks();
}

/** The processes below `pid` (not itself), with their command lines. */
function descendants(pid) {
  const out = [];
  const queue = children(pid);
  while (queue.length) {
    const p = queue.shift();
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue;
    }
    out.push({ pid: p, cmdline });
    queue.push(...children(p));
  }
  return out;
}

/** Resident memory of `pid` in bytes (VmRSS), 0 once it is gone. */
function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

module.exports = { descendants, rssBytes, treeCpuSeconds };
