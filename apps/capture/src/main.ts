#!/usr/bin/env node
/**
 * pgferry capture: the snapshot part of the full-data phase in its own process. Configuration
 * comes from the JSON file named by PGFERRY_CONFIG (written 0600 by the controller; it holds
 * passwords, so never on the command line). Exits 0 when every chunk is sent and checkpointed.
 */
import {
  CONFIG_ENV,
  EXIT_RETRIABLE,
  readProcessConfig,
  runCaptureProcess,
  runChildProcess,
  type MigrationEvent,
} from '@pgferry/pipeline';

runChildProcess<MigrationEvent>('capture', async ({ emit, stop }) => {
  // Nothing to drain: unfinished chunks are sent again whole by the next capture.
  stop.addEventListener('abort', () => process.exit(EXIT_RETRIABLE), { once: true });
  await runCaptureProcess(readProcessConfig(process.env[CONFIG_ENV], 'capture'), emit);
});
