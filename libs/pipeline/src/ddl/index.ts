export * from './pg-ddl-capture';
export { applyDdl, applyDdlOnce, ddlRefusal } from './pg-ddl-applier';
