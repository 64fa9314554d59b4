-- marts.dropoffs: one row per touchpoint: closed journeys through it, drop-offs there, rate,
-- and the journeys that left online there for an offline purchase (leakage, from marts.leakage,
-- which is built first). Noise touchpoints ([paths] drop_touchpoints, e.g. sign_in) are left
-- out, as in the paths: marts.journey_facts' touchpoints are without them.
with

closed_journeys as (
    select status, last_touchpoint, touchpoints
    from marts.journey_facts
    where status <> 'open'
),

through as (
    select touchpoint, count(*) as journeys_through
    from (select unnest(touchpoints) as touchpoint from closed_journeys)
    group by touchpoint
),

exits as (
    select last_touchpoint as touchpoint, count(*) as exits
    from closed_journeys
    where status = 'dropped'
    group by last_touchpoint
),

leaks as (
    select from_touchpoint as touchpoint, sum(journeys) as leaks
    from marts.leakage
    group by from_touchpoint
),

final as (
    select
        through.touchpoint,
        through.journeys_through,
        coalesce(exits.exits, 0) as exits,
        coalesce(exits.exits, 0) / through.journeys_through as dropoff_rate,
        coalesce(leaks.leaks, 0) as leaks,
        coalesce(leaks.leaks, 0) / through.journeys_through as leakage_rate
    from through
    left join exits using (touchpoint)
    left join leaks using (touchpoint)
)

select * from final order by touchpoint
