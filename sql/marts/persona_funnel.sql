-- marts.persona_funnel: one row per (persona, journey stage), as marts.funnel for each
-- persona's closed journeys (marts.journey_facts, with the persona of the journey's customer).
with
stages as (
    select * from (values
        (1, 'awareness'), (2, 'interest'), (3, 'consideration'),
        (4, 'purchase'), (5, 'usage'), (6, 'loyalty')
    ) as t(stage_order, stage)
),
personas as (
    select distinct persona from marts.customer_personas
),
furthest as (
    select
        customer_personas.persona,
        facts.furthest_stage_order,
        count(*) as closed_journeys,
        count(*) filter (where facts.status = 'dropped') as dropped_journeys
    from marts.journey_facts as facts
    inner join journeys.journeys as journeys using (journey_id)
    inner join marts.customer_personas as customer_personas using (customer_key)
    where facts.status <> 'open' and facts.furthest_stage_order is not null
    group by all
),
reached as (
    select
        personas.persona,
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
    from personas
    cross join stages
    left join furthest on furthest.persona = personas.persona
    group by all
),
closed as (
    select persona, sum(closed_journeys) as closed_journeys from furthest group by persona
),
final as (
    select
        reached.persona,
        reached.stage_order,
        reached.stage,
        reached.journeys,
        coalesce(reached.journeys / nullif(closed.closed_journeys, 0), 0)::double
            as share_of_journeys,
        reached.dropoffs,
        coalesce(reached.dropoffs / nullif(reached.journeys, 0), 0)::double as dropoff_rate
    from reached
    left join closed using (persona)
)
select * from final order by persona, stage_order
