-- marts.persona_dropoffs: one row per (persona, touchpoint), as marts.dropoffs for each
-- persona's closed journeys: journeys through the touchpoint, drop-offs there, rate.
with
closed_journeys as (
    select customer_personas.persona, facts.status, facts.last_touchpoint, facts.touchpoints
    from marts.journey_facts as facts
    inner join journeys.journeys as journeys using (journey_id)
    inner join marts.customer_personas as customer_personas using (customer_key)
    where facts.status <> 'open'
),
through as (
    select persona, touchpoint, count(*) as journeys_through
    from (select persona, unnest(touchpoints) as touchpoint from closed_journeys)
    group by all
),
exits as (
    select persona, last_touchpoint as touchpoint, count(*) as exits
    from closed_journeys
    where status = 'dropped'
    group by all
),
final as (
    select
        through.persona,
        through.touchpoint,
        through.journeys_through,
        coalesce(exits.exits, 0) as exits,
        coalesce(exits.exits, 0) / through.journeys_through as dropoff_rate
    from through
    left join exits using (persona, touchpoint)
)
select * from final order by persona, touchpoint
