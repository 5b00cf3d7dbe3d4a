// npm run lint: no import cycle between files, nor between the folders of a package (a folder
// imports its subfolders or its parent, never both ways). madge parses the imports; madge
// itself only knows file cycles, so the folder rule is checked here over its graph.
const { dirname } = require('node:path');
const madge = require('madge');

async function main() {
  const res = await madge(['libs', 'apps'], {
    fileExtensions: ['ts'],
    tsConfig: 'tsconfig.json',
    excludeRegExp: [/\/dist\//, /\.spec\.ts$/, /\.int-spec\.ts$/, /\/node_modules\//],
  });
  const problems = res.circular().map((c) => `file cycle: ${c.join(' -> ')}`);
  // Folder graph within each package; index.ts is the package's barrel and may import anything.
  const edges = new Map();
  for (const [file, deps] of Object.entries(res.obj())) {
    if (file.endsWith('/index.ts')) continue;
    const from = dirname(file);
    for (const dep of deps) {
      const to = dirname(dep);
      if (to === from || !to.startsWith(from.split('/src')[0] + '/src')) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      edges.get(from).set(to, `${file} -> ${dep}`);
    }
  }
  const reaches = (a, b, seen = new Set()) => {
    if (a === b) return true;
    if (seen.has(a)) return false;
    seen.add(a);
    return [...(edges.get(a)?.keys() ?? [])].some((n) => reaches(n, b, seen));
  };
  for (const [from, tos] of edges)
    for (const [to, why] of tos)
      if (from < to && reaches(to, from))
        problems.push(`folder cycle: ${from} <-> ${to} (${why}, and back: ${findBack(to, from)})`);
  function findBack(a, b) {
    for (const [to, why] of edges.get(a) ?? []) if (reaches(to, b)) return why;
    return '?';
  }
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
