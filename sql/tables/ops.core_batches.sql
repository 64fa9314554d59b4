-- ops.core_batches: the batches (ops.batches) whose rows core.events has been built from; an
-- incremental build reads the raw rows of the other batches only.
create table if not exists ops.core_batches (
    batch_id varchar primary key,
    built_at timestamptz not null
);
