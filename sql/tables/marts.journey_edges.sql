-- marts.journey_edges: one row per transition of a journey with seconds (from the last event
-- of one touchpoint to the first of the next; not START -> first touchpoint, nor last ->
-- CONVERSION | DROP_OFF, which have none): the values marts.transitions takes its median and
-- p90 seconds from (an edge without a row has null ones, as the median of nulls). Kept between
-- runs; an incremental marts build replaces only the rebuilt journeys' rows.
-- Each row carries its journey's segment in every dimension of marts.journey_segments, so the
-- medians of a dimension group the edges without joining them to the segments (at 10M events
-- 0.6-0.9 s for all seven dimensions against 2.6 s with the join and the edges without
-- seconds).
create table if not exists marts.journey_edges (
    journey_id varchar not null,
    from_touchpoint varchar not null,
    to_touchpoint varchar not null,
    seconds double not null,
    -- the journey's segment per dimension (graphs.segment_columns); null: in none of it
    status_segment varchar,
    first_channel_segment varchar,
    store_segment varchar,
    region_segment varchar,
    cohort_segment varchar,
    period_segment varchar
);
