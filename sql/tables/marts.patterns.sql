-- marts.patterns: one row per (journey, pattern), with the events that matched as evidence.
create table if not exists marts.patterns (
    journey_id varchar not null,
    customer_key varchar not null,
    pattern varchar not null,
    variant varchar,                    -- collected | no_show for click_and_collect
    evidence_event_ids varchar[] not null,
    converted_at timestamptz not null,
    revenue decimal(18, 2),
    primary key (journey_id, pattern)
);
