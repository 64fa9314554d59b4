-- marts.journey_edges: one row per transition of a journey (START -> first touchpoint, ...,
-- last -> CONVERSION | DROP_OFF): the values marts.transitions takes its median and p90 seconds
-- from. Kept between runs; an incremental marts build replaces only the rebuilt journeys' rows.
create table if not exists marts.journey_edges (
    journey_id varchar not null,
    customer_key varchar not null,      -- of the steps the transition leaves from
    from_touchpoint varchar not null,
    to_touchpoint varchar not null,
    seconds double                      -- from the last event of one touchpoint to the first of the next; null into an end
);
