import 'reflect-metadata';
import {
  BadRequestException,
  Body,
  Controller,
  Get,
  Inject,
  Module,
  NotFoundException,
  Param,
  Post,
  type DynamicModule,
  type OnModuleDestroy,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import type { Client } from 'pg';
import { connect, type Endpoint } from '@pgferry/pg';
import { changeThrottle, parseThrottleChange, PgferryError } from '@pgferry/core';
import { readThrottle, requestCutover, storeThrottle } from '@pgferry/control';
import { apiGuard } from './api-guard';
import { listTasks, readTaskStatus, type TaskStatus } from './task-status';

const DESTINATION = Symbol('destination');

/** One destination connection for the API's reads; queries queue on it. */
class DestinationConnection implements OnModuleDestroy {
  private client: Promise<Client> | null = null;
  constructor(private readonly endpoint: Endpoint) {}
  get(): Promise<Client> {
    if (!this.client) {
      this.client = connect(this.endpoint, 'destination', { applicationName: 'pgferry api' });
      this.client.catch(() => (this.client = null));
    }
    return this.client;
  }
  async onModuleDestroy(): Promise<void> {
    const c = await this.client?.catch(() => null);
    await c?.end().catch(() => undefined);
  }
}

@Controller('tasks')
class TasksController {
  constructor(@Inject(DESTINATION) private readonly db: DestinationConnection) {}

  @Get()
  async list(): Promise<{ tasks: string[] }> {
    return { tasks: await listTasks(await this.db.get()) };
  }

  @Get(':id')
  async get(@Param('id') id: string): Promise<TaskStatus> {
    const status = await readTaskStatus(await this.db.get(), id);
    if (!status) throw new NotFoundException(`task ${JSON.stringify(id)} does not exist on this destination`);
    return status;
  }

  /** Asks the running migrate of an incremental task to cut over (as `pgferry cutover` does). */
  @Post(':id/cutover')
  async cutover(@Param('id') id: string): Promise<TaskStatus> {
    const db = await this.db.get();
    const status = await readTaskStatus(db, id);
    if (!status) throw new NotFoundException(`task ${JSON.stringify(id)} does not exist on this destination`);
    if (!status.stream)
      throw new BadRequestException(
        `task ${JSON.stringify(id)} has no incremental phase: there is nothing to cut over`,
      );
    await requestCutover(db, id);
    return (await readTaskStatus(db, id))!;
  }

  /**
   * Changes the task's limits in force (as `pgferry throttle` does): body
   * `{ full: { sourceQueriesPerSecond, rowsPerSecond, bytesPerSecond }, incremental: { rowsPerSecond, bytesPerSecond } }`,
   * each field a number above 0, null to clear it, or absent to keep it.
   */
  @Post(':id/throttle')
  async throttle(@Param('id') id: string, @Body() body: unknown): Promise<TaskStatus> {
    const db = await this.db.get();
    let change;
    try {
      change = parseThrottleChange(body ?? {});
    } catch (err) {
      if (err instanceof PgferryError && err.code === 'INVALID_THROTTLE')
        throw new BadRequestException(err.message);
      throw err;
    }
    const record = await readThrottle(db, id);
    if (!record)
      throw new NotFoundException(
        `task ${JSON.stringify(id)} has no throttle record on this destination: start it with pgferry migrate`,
      );
    await storeThrottle(db, id, changeThrottle(record.limits, change), 'api');
    return (await readTaskStatus(db, id))!;
  }
}

@Module({})
export class TasksModule {
  static forDestination(endpoint: Endpoint): DynamicModule {
    return {
      module: TasksModule,
      controllers: [TasksController],
      providers: [{ provide: DESTINATION, useValue: new DestinationConnection(endpoint) }],
    };
  }
}

/**
 * Starts the task API (GET /tasks, GET /tasks/:id, POST /tasks/:id/cutover, POST
 * /tasks/:id/throttle) over the
 * destination's control schema. Every request needs `Authorization: Bearer <token>` and a
 * mutating one may not come from another origin (api-guard.ts); `tokenHint` tells a refused
 * client where the token is.
 */
export async function startTaskApi(
  endpoint: Endpoint,
  port: number,
  host = '127.0.0.1',
  access: { token: string; tokenHint: string },
): Promise<{ app: INestApplication; url: string }> {
  const app = await NestFactory.create(TasksModule.forDestination(endpoint), { logger: false });
  app.use(apiGuard(access.token, access.tokenHint));
  app.enableShutdownHooks();
  await app.listen(port, host);
  const addr = app.getHttpServer().address();
  return { app, url: `http://${host}:${typeof addr === 'object' && addr ? addr.port : port}` };
}
