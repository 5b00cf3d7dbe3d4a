import type { Client } from 'pg';
import { ObjectError } from '@pgferry/core';
import { RUN_HEADER } from '@pgferry/avro';
import { checkRun } from '@pgferry/control';
import { kafkaClusterId, type KafkaClientConfig, type TopicPartition } from '@pgferry/kafka';
import { recordHeader, type RecordView } from '@pgferry/kafka-protocol';

/**
 * An applier bound to its task's run (libs/control runs): checked at start against the Kafka
 * it reads, it refuses a record of another run and a partition the run recorded no offset for.
 * The task's processes always bind their appliers; an applier without a task (the apply
 * mechanics alone, in tests) reads from the stored offsets or 0 and takes any record.
 */
export class RunRecords {
  private readonly id: Buffer;

  private constructor(
    readonly task: string,
    readonly runId: string,
  ) {
    this.id = Buffer.from(runId, 'latin1');
  }

  /**
   * Reads the task's run from the destination and checks that `kafka` is the cluster it keeps
   * its records in (RunMismatchError otherwise); null without a task.
   */
  static async bind(
    task: string | undefined,
    kafka: KafkaClientConfig,
    destination: Pick<Client, 'query'>,
  ): Promise<RunRecords | null> {
    if (!task) return null;
    const run = await checkRun(destination, task, { kafkaCluster: await kafkaClusterId(kafka) });
    return new RunRecords(task, run.runId);
  }

  /**
   * Throws ForeignRunError unless `r` carries this run's header. One record per batch is enough
   * (the appliers check the first they read of each): a batch is one producer's, in one run.
   */
  check(r: RecordView, where: string): void {
    let header: Buffer | null;
    try {
      header = recordHeader(r, RUN_HEADER);
    } catch {
      header = null;
    }
    if (header && header.equals(this.id)) return;
    throw new ForeignRunError(
      `${where} offset ${r.offset}: the record was written by ${header ? `run ${header.toString('latin1')}` : 'no pgferry run (it has no pgferry.run header)'}, not by task ${this.task}'s run ${this.runId}; the applier stops rather than apply or skip it: the topic holds another run's records past this run's start offsets (something else writes to it, or the topic was shared with another task); give each task its own topics (kafka.topicPrefix) and start this one afresh into an empty destination`,
    );
  }

  /**
   * Every assigned partition must have a stored offset (the run's start offset at least, see
   * recordStartOffsets): reading one from 0 could apply an older run's records.
   */
  requireOffsets(partitions: readonly TopicPartition[], offsets: ReadonlyMap<string, bigint>): void {
    const missing = partitions.filter((p) => !offsets.has(`${p.topic}:${p.partition}`));
    if (!missing.length) return;
    const list = missing.map((p) => `${p.topic} partition ${p.partition}`).join(', ');
    throw new ObjectError(
      `task ${this.task} (run ${this.runId}) recorded no start offset for Kafka ${list}: the run did not create it (partitions added to the topic, or a topic created outside pgferry), so the applier cannot tell where the run's records begin there; remove the partitions, or start the task afresh into an empty destination`,
      { code: 'NO_START_OFFSET' },
    );
  }
}

/** A record of another run (or of no pgferry run) in a topic of this run. Fatal, never dead-lettered. */
export class ForeignRunError extends ObjectError {
  constructor(message: string) {
    super(message, { code: 'FOREIGN_RUN' });
  }
}
