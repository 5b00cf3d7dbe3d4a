import { ConnectionError, DataError } from './errors';
import { retry, RetryDeadlineError } from './retry';

function clock() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms) };
}

describe('retry', () => {
  it('retries retriable errors until success', async () => {
    const c = clock();
    let calls = 0;
    const result = await retry(
      async () => {
        if (++calls < 3) throw new ConnectionError('down');
        return 'ok';
      },
      { deadlineMs: 10_000, jitter: 0, ...c },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(c.now()).toBe(200 + 400);
  });

  it('stops at once on a fatal error', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new DataError('bad row');
        },
        { deadlineMs: 10_000, ...clock() },
      ),
    ).rejects.toThrow('bad row');
    expect(calls).toBe(1);
  });

  it('never retries programming errors, even when told to retry everything', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new TypeError('x is undefined');
        },
        { deadlineMs: 10_000, shouldRetry: () => true, ...clock() },
      ),
    ).rejects.toBeInstanceOf(TypeError);
    expect(calls).toBe(1);
  });

  it('gives up at the deadline with the last error as cause', async () => {
    const c = clock();
    const err = await retry(
      async () => {
        throw new ConnectionError('still down');
      },
      { deadlineMs: 5_000, jitter: 0, maxDelayMs: 1_000, ...c },
    ).catch((e) => e);
    expect(err).toBeInstanceOf(RetryDeadlineError);
    expect(err.message).toMatch(/^gave up after \d+ attempts in 5s: still down$/);
    expect(err.cause).toBeInstanceOf(ConnectionError);
    expect(c.now()).toBe(5_000);
  });
});
