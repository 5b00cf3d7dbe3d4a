import { Writable } from 'node:stream';

/** ProgressReporter's erase of the block it drew last: cursor up N lines, erase below. */
// eslint-disable-next-line no-control-regex -- the escape sequence is what is matched
const ERASE_BLOCK = /^\x1b\[\d+A\x1b\[0J/;

/**
 * One output shared by the migrate's progress and the demo's own lines, as if they were two
 * terminals. On a terminal the migrate's progress redraws its block in place, erasing the lines
 * it drew last; a line the demo wrote after them would be erased in their place. So the erase
 * that comes after a demo line is dropped: the old block stays above as history, the new one is
 * drawn below. Elsewhere nothing is redrawn and everything passes through.
 */
export class DemoOutput {
  private demoWrote = false;
  /** The output for runMigrate (and its ProgressReporter): a terminal when `out` is one. */
  readonly migrate: Writable & { isTTY?: boolean };

  constructor(private readonly out: Writable & { isTTY?: boolean }) {
    this.migrate = Object.assign(
      new Writable({
        write: (chunk: Buffer | string, _encoding, done) => {
          let text = chunk.toString();
          if (this.demoWrote) text = text.replace(ERASE_BLOCK, '');
          this.demoWrote = false;
          if (text) out.write(text);
          done();
        },
      }),
      { isTTY: out.isTTY },
    );
  }

  /** One line of the demo's own. */
  say = (line: string): void => {
    this.out.write(`${line}\n`);
    this.demoWrote = true;
  };

  /** The output of another command (pgferry cutover): each of its lines said with `prefix` in front. */
  command(prefix: string): Writable {
    let partial = '';
    return new Writable({
      write: (chunk: Buffer | string, _encoding, done) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) this.say(`${prefix}${line}`);
        done();
      },
    });
  }
}
