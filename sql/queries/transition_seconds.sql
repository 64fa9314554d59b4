-- The median and p90 seconds of the edges of marts.transitions listed in _edges (a frame
-- registered by the caller: dimension, segment, from_touchpoint, to_touchpoint), one row per
-- edge, over every journey's transitions (marts.journey_edges) in the segments it is in
-- (marts.journey_segments). Linear interpolation between the two nearest values, as Polars'
-- quantile(interpolation="linear"); an edge into an end has no seconds (nulls).
with

wanted_segments as (
    select distinct dimension, segment from _edges
),

segments as (
    select journey_segments.journey_id, journey_segments.dimension, journey_segments.segment
    from marts.journey_segments
    semi join wanted_segments using (dimension, segment)
),

edges as (
    select journey_id, from_touchpoint, to_touchpoint, seconds from marts.journey_edges
),

seconds as (
    select
        segments.dimension,
        segments.segment,
        edges.from_touchpoint,
        edges.to_touchpoint,
        median(edges.seconds) as median_seconds,
        quantile_cont(edges.seconds, 0.9) as p90_seconds
    from edges
    inner join segments using (journey_id)
    group by all
),

final as (
    select * from seconds
    semi join _edges using (dimension, segment, from_touchpoint, to_touchpoint)
)

select * from final
