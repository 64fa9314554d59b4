-- core.customers: one row per identifier, mapping it to the customer it belongs to.
-- Its key (identifier_type, identifier_value) is unique by construction (checked by the
-- tests), not declared: a full build writes every identifier again (4.2M at 10M events).
create table if not exists core.customers (
    identifier_type varchar not null,
    identifier_value varchar not null,
    customer_key varchar not null,
    group_key varchar                   -- the identifiers its links could reach, before the customer limits
);
-- databases made before 2026-12-01 get the column (filled by the next run's full stitch)
alter table core.customers add column if not exists group_key varchar;
