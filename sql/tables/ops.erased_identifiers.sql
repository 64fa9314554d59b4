-- ops.erased_identifiers: one row per identifier of a person erased by `journey forget`, as a keyed digest
-- (HMAC-SHA256 with the hashing key of "type:value"). Ingest rejects a row that carries one (reason `erased`,
-- no text), so a source file written before the erasure reached it does not bring the person back. Without the
-- key a digest tells nothing; it is not joined to anything else.
create table if not exists ops.erased_identifiers (
    identifier_type varchar not null,
    identifier_digest varchar not null
);
