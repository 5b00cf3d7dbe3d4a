#!/usr/bin/env node
/**
 * pgferry applier: consumes the table topics and applies them to the destination until told to
 * stop (IPC `stop`, SIGTERM or SIGINT). Configuration comes from the JSON file named by
 * PGFERRY_CONFIG (written 0600 by the controller; it holds passwords, so never on the command
 * line).
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { CONFIG_ENV, readProcessConfig, runChildProcess, type MigrationEvent } from '@pgferry/task';
import { ApplierModule, ApplierRunner } from './applier.module';

runChildProcess<MigrationEvent>('applier', async (ctx) => {
  const config = readProcessConfig(process.env[CONFIG_ENV], 'applier');
  const app = await NestFactory.createApplicationContext(ApplierModule.register(config, ctx), {
    logger: false,
    abortOnError: false,
  });
  try {
    await app.get(ApplierRunner).finished;
  } finally {
    await app.close();
  }
});
