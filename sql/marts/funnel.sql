-- marts.funnel: one row per journey stage, awareness to loyalty.
-- A closed journey "reaches" a stage when its furthest stage is that one or a later one;
-- it drops off at its furthest stage when it ended without a conversion. Journeys none of
-- whose steps has a stage are not counted.
with

stages as (
    select * from (values
        (1, 'awareness'), (2, 'interest'), (3, 'consideration'),
        (4, 'purchase'), (5, 'usage'), (6, 'loyalty')
    ) as t(stage_order, stage)
),

-- the closed journeys counted per furthest stage (marts.journey_facts: one row per journey)
furthest as (
    select
        furthest_stage_order,
        count(*) as closed_journeys,
        count(*) filter (where status = 'dropped') as dropped_journeys
    from marts.journey_facts
    where status <> 'open' and furthest_stage_order is not null
    group by furthest_stage_order
),

reached as (
    select
        stages.stage_order,
        stages.stage,
        coalesce(
            sum(furthest.closed_journeys) filter (
                where furthest.furthest_stage_order >= stages.stage_order
            ),
            0
        )::bigint as journeys,
        coalesce(
            sum(furthest.dropped_journeys) filter (
                where furthest.furthest_stage_order = stages.stage_order
            ),
            0
        )::bigint as dropoffs
    from stages
    left join furthest on true
    group by stages.stage_order, stages.stage
),

final as (
    select
        stage_order,
        stage,
        journeys,
        coalesce(
            journeys / nullif((select sum(closed_journeys) from furthest), 0), 0
        )::double as share_of_journeys,
        dropoffs,
        coalesce(dropoffs / nullif(journeys, 0), 0)::double as dropoff_rate
    from reached
)

select * from final order by stage_order
