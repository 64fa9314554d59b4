-- marts.journey_edges: one row per transition of a journey (START -> first touchpoint, ...,
-- last -> CONVERSION | DROP_OFF): the values marts.transitions takes its median and p90 seconds
-- from. Kept between runs; an incremental marts build replaces only the rebuilt journeys' rows.
-- Each row carries its journey's segment in every dimension of marts.journey_segments, so the
-- medians of a dimension group the edges without joining them to the segments (at 10M events
-- 1.0 s for all seven dimensions against 2.6 s with the join).
create table if not exists marts.journey_edges (
    journey_id varchar not null,
    customer_key varchar not null,      -- of the steps the transition leaves from
    from_touchpoint varchar not null,
    to_touchpoint varchar not null,
    seconds double,                     -- from the last event of one touchpoint to the first of the next; null into an end
    -- the journey's segment per dimension (graphs.SEGMENT_DIMENSIONS); null: in none of it
    status_segment varchar,
    first_channel_segment varchar,
    store_segment varchar,
    region_segment varchar,
    cohort_segment varchar,
    period_segment varchar
);
