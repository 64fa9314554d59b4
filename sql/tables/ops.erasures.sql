-- ops.erasures: one row per erasure (`journey forget`): when, asked for by what kind of identifier, and how much
-- was removed. Never the identifier, the customer key or anything else that points at the person.
create table if not exists ops.erasures (
    erased_at timestamptz not null,
    requested_by varchar not null,      -- email, phone, loyalty_id or customer_key
    identifiers bigint not null,        -- identifiers of the person removed from core.customers
    events bigint not null,             -- events removed from core.events
    rows_deleted bigint not null,       -- rows removed from every table together
    tables varchar not null             -- JSON: rows removed per table
);
