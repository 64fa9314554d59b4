-- quarantine.rejects: one row per source row that could not be loaded, with why and where.
create table if not exists quarantine.rejects (
    batch_id varchar not null,
    source varchar not null,
    file varchar not null,
    line_no bigint not null,            -- 1-based line in the file (CSV: the header is line 1)
    reason varchar not null,            -- reason code, e.g. invalid_json, missing_timestamp
    detail varchar,
    raw_text varchar                    -- the row as read, e-mails and phone numbers masked
);
