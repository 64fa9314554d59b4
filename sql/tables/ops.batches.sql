-- ops.batches: one row per loaded source file (a file whose checksum was already loaded is skipped, not re-recorded;
-- so is, unread, a file of the same source and name with the size and modification time it was loaded with).
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
    finished_at timestamptz not null,
    file_bytes bigint,                  -- the file's size when it was read
    file_modified_ns bigint             -- and its modification time (ns since the epoch)
);
-- databases made before 2026-12-01 get the two columns (null for their batches)
alter table ops.batches add column if not exists file_bytes bigint;
alter table ops.batches add column if not exists file_modified_ns bigint;
