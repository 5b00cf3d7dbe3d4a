import { ConnectionError, DataError, isConnectionLoss, PgferryError, TransientError } from './errors';
import { retry, RetryDeadlineError, retryDeadlines, RetryStreak, retryWindowName } from './retry';

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

describe('retry options', () => {
  const down = () => new ConnectionError('down');

  it('tells onRetry once per retried attempt, with the pause before the next', async () => {
    const seen: Array<[number, number]> = [];
    let calls = 0;
    await retry(
      async () => {
        if (++calls < 4) throw down();
      },
      { deadlineMs: 10_000, jitter: 0, onRetry: (_e, n, ms) => seen.push([n, ms]), ...clock() },
    );
    expect(seen).toEqual([
      [1, 200],
      [2, 400],
      [3, 800],
    ]);
  });

  it('maxAttempts gives up after that many attempts, with the last error as cause', async () => {
    let calls = 0;
    const err = await retry(
      async () => {
        calls++;
        throw down();
      },
      { deadlineMs: Infinity, maxAttempts: 3, initialDelayMs: 0, ...clock() },
    ).catch((e) => e);
    expect(calls).toBe(3);
    expect(err).toBeInstanceOf(RetryDeadlineError);
    expect(err.attempts).toBe(3);
    expect(err.cause).toBeInstanceOf(ConnectionError);
  });

  it('an infinite deadline retries as long as shouldRetry says, the delay capped', async () => {
    const c = clock();
    let calls = 0;
    const pauses: number[] = [];
    const result = await retry(
      async () => {
        if (++calls < 50) throw down();
        return calls;
      },
      { deadlineMs: Infinity, jitter: 0, maxDelayMs: 5_000, onRetry: (_e, _n, ms) => pauses.push(ms), ...c },
    );
    expect(result).toBe(50);
    expect(Math.max(...pauses)).toBe(5_000);
    expect(c.now()).toBe(200 + 400 + 800 + 1600 + 3200 + 44 * 5_000);
  });

  it('resetAfterMs: an attempt that ran long before failing starts a new run (deadline and delay)', async () => {
    const c = clock();
    const runs = [0, 0, 10_000, 0, 0, 10_000, 0, 0];
    const pauses: Array<[number, number]> = [];
    let calls = 0;
    await retry(
      async () => {
        const ran = runs[calls++];
        if (ran === undefined) return;
        await c.sleep(ran);
        throw down();
      },
      {
        deadlineMs: 5_000,
        jitter: 0,
        resetAfterMs: 5_000,
        onRetry: (_e, n, ms) => pauses.push([n, ms]),
        ...c,
      },
    );
    // Without the reset, the 10 s attempts alone would pass the 5 s deadline.
    expect(calls).toBe(runs.length + 1);
    expect(pauses).toEqual([
      [1, 200],
      [2, 400],
      [1, 200],
      [2, 400],
      [3, 800],
      [1, 200],
      [2, 400],
      [3, 800],
    ]);
  });

  it('without resetAfterMs a long attempt counts against the deadline', async () => {
    const c = clock();
    let calls = 0;
    const err = await retry(
      async () => {
        calls++;
        await c.sleep(10_000);
        throw down();
      },
      { deadlineMs: 5_000, jitter: 0, ...c },
    ).catch((e) => e);
    expect(calls).toBe(1);
    expect(err).toBeInstanceOf(RetryDeadlineError);
  });

  it('an abort while waiting ends the retries with the last error', async () => {
    const abort = new AbortController();
    let calls = 0;
    const err = await retry(
      async () => {
        calls++;
        throw down();
      },
      {
        deadlineMs: 10_000,
        signal: abort.signal,
        onRetry: () => abort.abort(),
        sleep: async () => undefined,
      },
    ).catch((e) => e);
    expect(calls).toBe(1);
    expect(err).toBeInstanceOf(ConnectionError);
  });
});

describe('RetryStreak: a run of failures over calls of their own', () => {
  it('keeps the deadline over failed calls, and a success starts over', () => {
    const c = clock();
    const streak = new RetryStreak({ deadlineMs: 1_000, jitter: 0, initialDelayMs: 100, ...c });
    expect(streak.failed(new ConnectionError('no leader'))).toBe(100);
    c.sleep(400);
    expect(streak.failed(new ConnectionError('no leader'))).toBe(200);
    expect(streak.failures).toBe(2);
    c.sleep(700);
    expect(() => streak.failed(new ConnectionError('no leader'))).toThrow(RetryDeadlineError);
    streak.succeeded();
    expect(streak.failures).toBe(0);
    expect(streak.failed(new ConnectionError('no leader'))).toBe(100);
  });

  it('throws a fatal error itself', () => {
    const streak = new RetryStreak({ deadlineMs: 1_000, ...clock() });
    const fatal = new DataError('bad row');
    expect(() => streak.failed(fatal)).toThrow(fatal);
    expect(streak.failures).toBe(0);
  });
});

describe('retry windows', () => {
  const windows = { connectionMinutes: 2, otherMinutes: 1 };

  it('rides out connection losses for connectionMinutes and other failures for otherMinutes', async () => {
    const lost = clock();
    const e1 = await retry(
      async () => {
        throw new ConnectionError('server restarting');
      },
      { ...retryDeadlines(windows), jitter: 0, maxDelayMs: 1_000, ...lost },
    ).catch((e) => e);
    expect(e1).toBeInstanceOf(RetryDeadlineError);
    expect(lost.now()).toBe(120_000);
    const busy = clock();
    const e2 = await retry(
      async () => {
        throw new TransientError('deadlock detected');
      },
      { ...retryDeadlines(windows), jitter: 0, maxDelayMs: 1_000, ...busy },
    ).catch((e) => e);
    expect(e2).toBeInstanceOf(RetryDeadlineError);
    expect(busy.now()).toBe(60_000);
  });

  it('counts an error marked connectionLoss, or caused by a ConnectionError, as a connection loss', () => {
    expect(
      isConnectionLoss(new PgferryError('NOT_LEADER_OR_FOLLOWER', { retriable: true, connectionLoss: true })),
    ).toBe(true);
    expect(isConnectionLoss(new RetryDeadlineError(3, 1000, new ConnectionError('down')))).toBe(true);
    expect(isConnectionLoss(new TransientError('deadlock detected'))).toBe(false);
    expect(retryWindowName(new ConnectionError('down'), windows)).toBe('retry.connectionMinutes (2)');
    expect(retryWindowName(new TransientError('out of memory'), windows)).toBe('retry.otherMinutes (1)');
  });
});
