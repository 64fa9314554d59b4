-- ops.batches: one row per loaded source file (a file whose checksum was already loaded is skipped, not re-recorded).
create table if not exists ops.batches (
    batch_id varchar primary key,
    source varchar not null,
    file varchar not null,
    checksum varchar not null,          -- sha256 of the file's bytes
    rows_read bigint not null,
    rows_loaded bigint not null,
    rows_duplicate bigint not null,
    rows_rejected bigint not null,
    status varchar not null,            -- loaded
    key_fingerprint varchar not null,   -- tells the hashing key apart, without revealing it
    started_at timestamptz not null,
    finished_at timestamptz not null
);
