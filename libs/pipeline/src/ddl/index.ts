export * from './pg-ddl-capture';
export { applyDdl, ddlRefusal } from './pg-ddl-applier';
