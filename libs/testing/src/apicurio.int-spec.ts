import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { startApicurio } from './apicurio';
import { repoRoot } from './kafka-runtime';
import { processAlive } from './process-output';

describe('startApicurio: Apicurio Registry 3 from Maven Central, in-memory', () => {
  it('answers on its Confluent-compatible API, starts empty, and stop() ends the JVM and deletes its dir', async () => {
    const registry = await startApicurio();
    try {
      expect(registry.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7$/);
      const subjects = await fetch(`${registry.url}/subjects`);
      expect(subjects.status).toBe(200);
      expect(await subjects.json()).toEqual([]);
      const system = await (await fetch(`${registry.baseUrl}/apis/registry/v3/system/info`)).json();
      // The version java/apicurio/pom.xml names, on its default storage: H2 in memory.
      const pom = readFileSync(join(repoRoot(), 'java', 'apicurio', 'pom.xml'), 'utf8');
      const version = /<apicurio\.version>([^<]+)</.exec(pom)![1];
      expect(system).toMatchObject({ name: 'Apicurio Registry (SQL)', version });
      expect(readFileSync(registry.logFile, 'utf8')).toContain('Using h2 SQL storage.');
      expect(processAlive(registry.pid)).toBe(true);
    } finally {
      await registry.stop();
    }
    expect(processAlive(registry.pid)).toBe(false);
    expect(existsSync(dirname(registry.logFile))).toBe(false);
    await registry.stop();
  });

  it('fails to start on a port that is taken, quoting its log', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(startApicurio({ port })).rejects.toThrow(
        new RegExp(
          `did not start: the JVM exited [\\s\\S]*--- errors logged ---[\\s\\S]*--- last 40 lines of [^\\n]*apicurio\\.log ---[\\s\\S]*${port}`,
        ),
      );
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});
