import type { Client } from 'pg';
import { describeError, PgferryError, type Logger } from '@pgferry/core';
import type { Applier, ApplierTarget } from './applier';
import { readStreamTables } from '@pgferry/control';

export interface FollowingApplierOptions<A extends Applier> {
  task: string;
  /** The topics of the tables the task started with. */
  targets: ApplierTarget[];
  /** Opens a destination connection (for reading pgferry.stream_tables). */
  connect: () => Promise<Client>;
  /** An applier over `targets`, not started. */
  create: (targets: ApplierTarget[]) => A;
  /** Called with the control connection at start and at every poll (the live throttle). */
  onPoll?: (control: Client) => Promise<void>;
  /** How often the list of tables is read (ms, default 1000). */
  pollMs?: number;
  logger?: Logger;
}

/**
 * Runs a change applier over the tables the task started with and those the stream gained
 * since (pgferry.stream_tables: tables created on the source in a schema the task takes whole,
 * and streamed tables renamed there, recorded by the capture before their first record is
 * sent). A consumer's topics are fixed once it runs (its group subscription), so when the list grows the applier in use is stopped and a new one started
 * over every topic. Both keep their offsets in the destination with the rows, so the new one
 * resumes exactly where the old one committed: nothing is lost or applied twice.
 */
export class FollowingApplier<A extends Applier> implements Applier {
  private applier: A | null = null;
  private targets: ApplierTarget[];
  private control: Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private switching: Promise<void> | null = null;
  private stopped = false;
  private failure: Error | null = null;

  constructor(private readonly opts: FollowingApplierOptions<A>) {
    this.targets = [...opts.targets];
  }

  get error(): Error | null {
    return this.failure ?? this.applier?.error ?? null;
  }

  get positions(): ReadonlyMap<string, bigint> {
    return this.applier?.positions ?? new Map();
  }

  /** The applier in use (the one over every table known at its start). */
  get current(): A | null {
    return this.applier;
  }

  async start(): Promise<void> {
    await this.gained();
    this.applier = this.opts.create(this.targets);
    await this.applier.start();
    this.timer = setInterval(() => this.follow(), this.opts.pollMs ?? 1000);
  }

  /** Adds the tables the stream gained to `targets`; true when there were any. */
  private async gained(): Promise<boolean> {
    this.control ??= await this.opts.connect();
    await this.opts.onPoll?.(this.control);
    const known = new Set(this.targets.map((t) => t.topic));
    const fresh = (await readStreamTables(this.control, this.opts.task)).filter((t) => !known.has(t.topic));
    this.targets.push(...fresh);
    return fresh.length > 0;
  }

  private follow(): void {
    if (this.switching || this.stopped || this.error) return;
    this.switching = (async () => {
      try {
        if (!(await this.gained())) return;
      } catch (err) {
        // The destination is away: the applier fails on it too and is replaced; read again later.
        this.opts.logger?.warn({ err: describeError(err) }, 'could not read the tables the stream gained');
        await this.control?.end().catch(() => undefined);
        this.control = null;
        return;
      }
      this.opts.logger?.info(
        { topics: this.targets.map((t) => t.topic) },
        'the stream gained a table: restarting the applier over every topic',
      );
      await this.applier?.stop();
      if (this.stopped) return;
      this.applier = this.opts.create(this.targets);
      await this.applier.start();
    })()
      .catch((err) => {
        this.failure ??= err instanceof Error ? err : new PgferryError(String(err));
      })
      .finally(() => {
        this.switching = null;
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.switching;
    await this.applier?.stop();
    await this.control?.end().catch(() => undefined);
    this.control = null;
  }
}
