/**
 * Every record a task's capture publishes (snapshot rows, changes, tombstones, transaction
 * records, heartbeats) carries the id of the run that wrote it in the Kafka header
 * `pgferry.run` (the run id's ASCII text, see libs/control's runs). A topic can outlive a run
 * (real Kafka keeps topics when the destination is recreated and the task started afresh): the
 * appliers refuse a record of another run instead of applying it, and other consumers can tell
 * the runs apart.
 */
export const RUN_HEADER = 'pgferry.run';
