-- ops.identity_changes: the merge ledger, one row per (customer before, customer after) pair whose identifiers a
-- run moved: customers merged, split, both, or renamed because a stronger identifier joined. Unchanged customers
-- give no row. Identifiers only new or only gone are not counted.
create table if not exists ops.identity_changes (
    changed_at timestamptz not null,
    change varchar not null,            -- merge, split, merge_split or rekey
    customer_key_before varchar not null,
    customer_key_after varchar not null,
    identifiers bigint not null         -- identifiers that went from the one to the other
);
