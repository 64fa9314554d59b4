-- marts.segment_kpis: one row per segment of marts.journey_segments over its closed journeys.
with

closed_journeys as (
    select journey_id, converted, revenue
    from journeys.journeys
    where status <> 'open'
),

omnichannel_journeys as (
    select distinct journey_id
    from marts.patterns
    where list_contains($omnichannel, pattern)  -- dashboards.OMNICHANNEL_PATTERNS
),

final as (
    select
        segments.dimension,
        segments.segment,
        count(*) as journeys,
        count(*) filter (where closed_journeys.converted) as conversions,
        conversions / journeys as conversion_rate,
        coalesce(sum(closed_journeys.revenue) filter (where closed_journeys.converted), 0)
            as revenue,
        count(omnichannel_journeys.journey_id) filter (where closed_journeys.converted)
            as omnichannel_conversions,
        omnichannel_conversions / nullif(conversions, 0) as omnichannel_share
    from marts.journey_segments as segments
    inner join closed_journeys using (journey_id)
    left join omnichannel_journeys using (journey_id)
    group by segments.dimension, segments.segment
)

select * from final order by dimension, segment
