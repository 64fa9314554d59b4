-- core.identity_links: one row per distinct pair of identifiers seen together, with its evidence.
create table if not exists core.identity_links (
    left_type varchar not null,
    left_value varchar not null,
    right_type varchar not null,
    right_value varchar not null,
    source varchar not null,            -- first source that showed the link
    first_seen_at timestamptz,
    last_seen_at timestamptz,
    records bigint not null,            -- events or records that carry the pair
    is_active boolean not null,         -- false when a guard dropped the link
    drop_reason varchar                 -- why a guard dropped it
);
