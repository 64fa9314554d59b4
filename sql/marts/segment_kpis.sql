-- marts.segment_kpis: one row per segment of marts.journey_segments over its closed journeys,
-- from marts.journey_facts (one row per journey, with its segment in each dimension).
with

closed_journeys as (
    select * from marts.journey_facts where status <> 'open'
),

-- one row per (closed journey, segment it is in): segment all, and one per dimension
memberships as (
    select 'all' as dimension, 'all' as segment, converted, revenue, is_omnichannel
    from closed_journeys
    union all
    select dimension, segment, converted, revenue, is_omnichannel
    from (
        unpivot closed_journeys
        on
            status_segment as 'status',
            first_channel_segment as 'first_channel',
            store_segment as 'store',
            region_segment as 'region',
            cohort_segment as 'cohort',
            period_segment as 'period'
        into name dimension value segment
    )
),

final as (
    select
        dimension,
        segment,
        count(*) as journeys,
        count(*) filter (where converted) as conversions,
        conversions / journeys as conversion_rate,
        coalesce(sum(revenue) filter (where converted), 0) as revenue,
        count(*) filter (where converted and is_omnichannel) as omnichannel_conversions,
        omnichannel_conversions / nullif(conversions, 0) as omnichannel_share
    from memberships
    group by dimension, segment
)

select * from final order by dimension, segment
