export { byteView, compareBytes, HEX_VALUE, SlabPool, SMALL_COPY } from './bytes';
export { crc32c } from './crc32c';
export {
  AuthenticationError,
  ConnectionError,
  DataError,
  describeError,
  isConnectionLoss,
  isProgrammingError,
  isRetriable,
  ObjectError,
  PermissionError,
  PgferryError,
  SpecError,
  TransientError,
} from './errors';
export { createLogger, type Logger } from './log';
export { lz4FrameCompress, lz4FrameDecompress, lz4IsNative } from './lz4-frame';
export { addKnownSecret, redactString } from './redact';
export { makePrivateDir, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, writePrivateFile } from './private-files';
export { expandEnvReferences } from './spec-env';
export { redactTaskSpec, registerSpecSecrets, stripUrlPassword, urlPassword } from './spec-secrets';
export {
  retry,
  RetryDeadlineError,
  retryDeadlines,
  RetryStreak,
  retryWindowName,
  sleep,
  type RetryOptions,
  type RetryWindows,
  withTimeout,
} from './retry';
export {
  type EndpointSpec,
  loadTaskSpec,
  readTaskSpecFile,
  parseKafkaSection,
  parseTaskSpec,
  type KafkaTlsSpec,
  NAME_CASES,
  type NameCase,
  OPERATIONS,
  type Operation,
  type SslSpec,
  type TaskSpec,
  type TaskSpecInput,
} from './spec';
export { MASKS, type MaskKind, type TransformSpec } from './spec-transforms';
export { type Clock, type Limits, RateLimiter, realClock } from './rate-limiter';
export {
  changeThrottle,
  type FullThrottle,
  parseThrottleChange,
  type ThrottleChange,
  fullThrottleSchema,
  type IncrementalThrottle,
  incrementalThrottleSchema,
  type ThrottleSettings,
  throttleSchema,
} from './throttle-spec';
