-- journeys.journeys: one row per journey (events leading to one conversion, or ending in a drop-off).
-- Its key (journey_id) is unique by construction (checked by the tests), not
-- declared: an incremental build deletes a day's customers, and with an index DuckDB's
-- commit of that costs seconds at 10M rows (measured on journeys.steps: 5.3 s, 0.1 s without).
create table if not exists journeys.journeys (
    journey_id varchar not null,
    customer_key varchar not null,
    started_at timestamptz not null,
    ended_at timestamptz not null,
    status varchar not null,            -- converted | dropped | open (inactive for less than the timeout at the end of the data)
    converted boolean not null,
    conversion_event_id varchar,
    converted_at timestamptz,
    revenue decimal(18, 2),
    events bigint not null,
    first_channel varchar not null,
    last_touchpoint varchar not null,   -- touchpoint of the last event before the journey ended
    path varchar not null,              -- cleaned touchpoint path, ' > '-joined
    seconds_to_convert double,
    patterns varchar[] not null
);
