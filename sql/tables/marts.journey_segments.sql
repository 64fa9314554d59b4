-- marts.journey_segments: one row per (journey, segment): which segments of marts.transitions a journey is in.
-- Its key (journey_id, segment) is unique by construction (checked by the tests), not declared:
-- at 10M events the table has ~11M rows, and its index cost seconds at every commit.
create table if not exists marts.journey_segments (
    journey_id varchar not null,
    dimension varchar not null,         -- all | status | first_channel | store | region | cohort | period
    segment varchar not null            -- all | converted | dropped | <dimension>=<value>
);
