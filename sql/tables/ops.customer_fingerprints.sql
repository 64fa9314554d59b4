-- ops.customer_fingerprints: one row per customer in core.events at the last journey rebuild, with a fingerprint of their events (what the next run compares to find the customers to rebuild).
create table if not exists ops.customer_fingerprints (
    customer_key varchar primary key,
    events bigint not null,
    hash_high bigint not null,          -- sum of the high 32 bits of each event row's hash
    hash_low bigint not null            -- sum of the low 32 bits
);
