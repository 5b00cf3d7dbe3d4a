import { Inject, Injectable, Module, type DynamicModule, type OnApplicationBootstrap } from '@nestjs/common';
import {
  runApplierProcess,
  type ApplierProcessConfig,
  type ChildContext,
  type MigrationEvent,
} from '@pgferry/task';

const CONFIG = Symbol('applier config');
const CONTEXT = Symbol('child context');

/** Starts the applier when the application boots; `finished` settles when it stops or fails. */
@Injectable()
export class ApplierRunner implements OnApplicationBootstrap {
  private settle!: { resolve: () => void; reject: (e: unknown) => void };
  readonly finished = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));

  constructor(
    @Inject(CONFIG) private readonly config: ApplierProcessConfig,
    @Inject(CONTEXT) private readonly ctx: ChildContext<MigrationEvent>,
  ) {}

  onApplicationBootstrap(): void {
    runApplierProcess(this.config, this.ctx.emit, this.ctx.stop).then(
      this.settle.resolve,
      this.settle.reject,
    );
  }
}

@Module({})
export class ApplierModule {
  static register(config: ApplierProcessConfig, ctx: ChildContext<MigrationEvent>): DynamicModule {
    return {
      module: ApplierModule,
      providers: [{ provide: CONFIG, useValue: config }, { provide: CONTEXT, useValue: ctx }, ApplierRunner],
      exports: [ApplierRunner],
    };
  }
}
