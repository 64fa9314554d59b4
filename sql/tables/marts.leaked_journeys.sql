-- marts.leaked_journeys: one row per converted journey that left online for an offline
-- conversion within the window: the rows marts.leakage sums. Kept between runs; an incremental
-- marts build replaces only the rebuilt journeys' rows.
create table if not exists marts.leaked_journeys (
    journey_id varchar not null,
    customer_key varchar not null,
    from_touchpoint varchar not null,
    from_stage varchar not null,
    from_channel varchar not null,
    from_event_id varchar not null,
    to_channel varchar not null,
    to_touchpoint varchar not null,
    conversion_event_id varchar not null,
    seconds double not null,
    revenue decimal(18, 2)
);
