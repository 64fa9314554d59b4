-- The median and p90 seconds of every edge of marts.transitions: one row per
-- (dimension, segment, from_touchpoint, to_touchpoint), over every journey's transitions
-- (marts.journey_edges) in the segments it is in (the edge's <dimension>_segment, the same
-- segments as marts.journey_segments'). Linear interpolation between the two nearest values,
-- as Polars' quantile(interpolation="linear"). An edge without seconds (from START, into an
-- end) is not kept and has no row here: marts.transitions takes null medians for it.
-- One dimension ($dimension) at a time: every journey is in one segment of a dimension at
-- most, so each query groups each edge once.
with

edges as (
    select
        $dimension as dimension,
        case $dimension
            when 'all' then 'all'
            when 'status' then status_segment
            when 'first_channel' then first_channel_segment
            when 'store' then store_segment
            when 'region' then region_segment
            when 'cohort' then cohort_segment
            when 'period' then period_segment
        end as segment,
        from_touchpoint,
        to_touchpoint,
        seconds
    from marts.journey_edges
),

final as (
    select
        dimension,
        segment,
        from_touchpoint,
        to_touchpoint,
        median(seconds) as median_seconds,
        quantile_cont(seconds, 0.9) as p90_seconds
    from edges
    where segment is not null
    group by all
)

select * from final
