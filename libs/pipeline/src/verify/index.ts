export * from './pg-table-verifier';
