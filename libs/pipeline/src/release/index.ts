export * from './pg-source-release';
