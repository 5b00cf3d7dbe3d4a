#!/usr/bin/env node
/**
 * pgferry capture: the snapshot part of the full-data phase, or the change stream of the
 * incremental phase, in its own process. Configuration comes from the JSON file named by
 * PGFERRY_CONFIG (written 0600 by the controller; it holds passwords, so never on the command
 * line); its role says which. The snapshot capture exits 0 when every chunk is sent and
 * checkpointed; the stream runs until told to stop (IPC `stop`, SIGTERM or SIGINT).
 */
import {
  CONFIG_ENV,
  EXIT_RETRIABLE,
  processRole,
  readProcessConfig,
  runCaptureProcess,
  runChildProcess,
  runStreamProcess,
  type MigrationEvent,
} from '@pgferry/task';

const file = process.env[CONFIG_ENV];
if (processRole(file) === 'stream') {
  runChildProcess<MigrationEvent>('capture', async ({ emit, stop }) => {
    // Stopping ends the stream after a last status update; nothing unconfirmed is lost.
    await runStreamProcess(readProcessConfig(file, 'stream'), emit, stop);
  });
} else {
  runChildProcess<MigrationEvent>('capture', async ({ emit, stop }) => {
    // Nothing to drain: unfinished chunks are sent again whole by the next capture.
    stop.addEventListener('abort', () => process.exit(EXIT_RETRIABLE), { once: true });
    await runCaptureProcess(readProcessConfig(file, 'capture'), emit);
  });
}
