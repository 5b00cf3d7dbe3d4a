import type { StreamLag } from '@pgferry/control';
import { parseLsn } from '@pgferry/pg';
import { cutoverProgress } from './caught-up';
import { streamLag } from '../test/stream-lag';

/** The one failure's figures: the source and the applied mark past the target. */
const lag = (over: Partial<StreamLag>) =>
  streamLag({ sourceLsn: '0/7BD2438', capturedLsn: '0/7BD2438', appliedLsn: '0/7BD2438', ...over });

describe('cutoverProgress', () => {
  const target = parseLsn('0/7BD22B8');

  it('is caught up once the applied mark and the capture are both at or past the target', () => {
    expect(cutoverProgress(lag({}), target)).toBe('caught-up');
    expect(cutoverProgress(lag({ appliedLsn: '0/7BD22B8', capturedLsn: '0/7BD22B8' }), target)).toBe(
      'caught-up',
    );
  });

  it('is not while the applier is behind, whatever the capture reports', () => {
    expect(cutoverProgress(lag({ appliedLsn: '0/5C79198' }), target)).toBeNull();
    expect(cutoverProgress(lag({ appliedLsn: null }), target)).toBeNull();
  });

  it('waits for the capture when a mark past the target counts as applied but the capture reports less', () => {
    // The figures of the one failure seen: the capture at 0/7BCF1B8, below the target.
    expect(cutoverProgress(lag({ capturedLsn: '0/7BCF1B8' }), target)).toBe('capture-behind');
    expect(cutoverProgress(lag({ capturedLsn: null }), target)).toBe('capture-behind');
  });
});
