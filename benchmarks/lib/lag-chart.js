// The cdc bench's lag over time: one CSV row per sample, and an SVG line chart of every run,
// written by hand (a chart library would be the only dependency of the benchmarks for 60 lines).
const { mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

/** Rounds `max` up to a readable axis end: 1 to 10 (in a few steps) times a power of ten. */
function niceCeil(max) {
  const p = 10 ** Math.floor(Math.log10(Math.max(max, 1e-3)));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

const xmlText = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/**
 * Writes `<dir>/<name>.csv` (run,seconds,lag_s) and `<dir>/<name>.svg` for `runs`
 * ([{ label, samples: [[seconds into the load, lag in s], ...] }]); returns both paths.
 */
function writeLagChart(dir, name, runs, title) {
  mkdirSync(dir, { recursive: true });
  const csv = ['run,seconds,lag_s'];
  for (const r of runs)
    for (const [t, lag] of r.samples) csv.push(`"${r.label}",${t.toFixed(2)},${lag.toFixed(3)}`);
  const csvPath = join(dir, `${name}.csv`);
  writeFileSync(csvPath, `${csv.join('\n')}\n`);

  const W = 760;
  const H = 360;
  const m = { l: 56, r: 16, t: 40, b: 44 };
  const all = runs.flatMap((r) => r.samples);
  const xMax = niceCeil(Math.max(1, ...all.map((s) => s[0])));
  const yMax = niceCeil(Math.max(0.5, ...all.map((s) => s[1])));
  const x = (t) => m.l + (t / xMax) * (W - m.l - m.r);
  const y = (v) => H - m.b - (v / yMax) * (H - m.t - m.b);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${xmlText(title)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    const t = (xMax * i) / 5;
    out.push(
      `<line x1="${m.l}" x2="${W - m.r}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${+v.toFixed(2)}</text>`,
      `<text x="${x(t)}" y="${H - m.b + 16}" text-anchor="middle">${+t.toFixed(1)}</text>`,
    );
  }
  out.push(
    `<text x="${W / 2}" y="${H - 8}" text-anchor="middle">seconds into the pgbench load</text>`,
    `<text transform="translate(14 ${H / 2}) rotate(-90)" text-anchor="middle">lag on the destination (s)</text>`,
  );
  runs.forEach((r, i) => {
    const color = COLORS[i % COLORS.length];
    const points = r.samples.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${points}"/>`,
      `<rect x="${m.l + 12}" y="${m.t + 4 + i * 18}" width="14" height="3" fill="${color}"/>`,
      `<text x="${m.l + 32}" y="${m.t + 9 + i * 18}">${xmlText(r.label)}</text>`,
    );
  });
  out.push('</svg>');
  const svgPath = join(dir, `${name}.svg`);
  writeFileSync(svgPath, `${out.join('\n')}\n`);
  return { csvPath, svgPath };
}

module.exports = { writeLagChart };
