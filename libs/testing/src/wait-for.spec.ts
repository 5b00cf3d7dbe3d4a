import { waitFor, WaitForTimeoutError } from './wait-for';

describe('waitFor', () => {
  it('returns the first done value', async () => {
    let n = 0;
    await expect(
      waitFor(() => ++n, { reason: 'n to reach 3', until: (v) => v >= 3, interval: 1 }),
    ).resolves.toBe(3);
  });

  it('fails with the reason and the last value seen', async () => {
    const err = await waitFor(() => ({ rows: 2 }), {
      reason: 'rows to be copied',
      until: (v) => v.rows === 3,
      timeout: 30,
      interval: 5,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(WaitForTimeoutError);
    expect(err.message).toMatch(
      /^timed out after 30 ms \(\d+ checks\) waiting for rows to be copied; last value: \{"rows":2\}$/,
    );
  });

  it('reports the last error when the condition throws', async () => {
    const err = await waitFor(
      () => {
        throw new Error('connection refused');
      },
      { reason: 'the server', timeout: 20, interval: 5 },
    ).catch((e) => e);
    expect(err.message).toMatch(/waiting for the server; last error: connection refused$/);
  });
});
