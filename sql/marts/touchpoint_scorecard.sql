-- marts.touchpoint_scorecard: one row per touchpoint of the closed journeys (noise left out,
-- as in the paths): reach, lift, drop-off, leakage, removal effect, time to the next step and
-- the trend of its reach, with a SWOT by these rules ($ parameters: [scorecard] of the config):
--   strength     lift >= $strong_lift and reach >= $min_reach: many journeys pass it, and
--                buyers more often than those who drop off
--   weakness     dropoff_rate >= $weak_dropoff_rate, or lift <= $weak_lift: journeys end there,
--                or those who drop off pass it more often than buyers
--   opportunity  lift >= $strong_lift and reach < $min_reach: it works, but few journeys get
--                there; or leakage_rate >= $leakage_rate:
--                journeys leave it to buy offline, a sale to keep or a path to join up
--   threat       reach_trend <= $falling_reach: it lost that share of its reach since the
--                period before; or unmanaged with dropoff_rate >= $weak_dropoff_rate: journeys
--                end at a place the company does not control
-- A touchpoint no dropped journey passes (the purchase itself, or what only follows one: a
-- pick-up, a return) has no lift and is neither a strength nor an opportunity by lift; nor has
-- any touchpoint while no journey converted. is_managed: most of its events are managed.
-- The median time to the next step is the transition graph's, keyed by the name [paths]
-- aliases give; the other numbers by the touchpoint's own name (with no aliases, the same).
-- Its reach_trend needs at least $min_trend_journeys journeys through it in the period before
-- (a change of a handful of journeys says nothing).
-- A journey's period is that of marts.period_kpis (its conversion, or its last event), by $period.
with
closed_journeys as (
    select
        facts.journey_id,
        facts.status,
        facts.touchpoints,
        date_trunc($period, coalesce(journeys.converted_at, journeys.ended_at))::date
            as period_start
    from marts.journey_facts as facts
    inner join journeys.journeys as journeys using (journey_id)
    where facts.status <> 'open'
),
totals as (
    select
        count(*) as journeys,
        count(*) filter (where status = 'converted') as converted,
        count(*) filter (where status = 'dropped') as dropped
    from closed_journeys
),
through as (
    select
        touchpoint,
        count(*) as journeys_through,
        count(*) filter (where status = 'converted') as converted_through,
        count(*) filter (where status = 'dropped') as dropped_through
    from (select status, unnest(touchpoints) as touchpoint from closed_journeys)
    group by touchpoint
),
settled as (
    select
        period_start,
        row_number() over (order by period_start desc) as recency
    from marts.period_kpis
    where is_settled
),
by_period as (
    select
        touchpoint,
        count(*) filter (where settled.recency = 1) as through_latest,
        count(*) filter (where settled.recency = 2) as through_previous
    from (
        select period_start, unnest(touchpoints) as touchpoint
        from closed_journeys
    ) as touches
    inner join settled using (period_start)
    where settled.recency <= 2
    group by touchpoint
),
period_totals as (
    select
        count(*) filter (where settled.recency = 1) as latest,
        count(*) filter (where settled.recency = 2) as previous,
        count(distinct settled.recency) as periods
    from closed_journeys
    inner join settled using (period_start)
    where settled.recency <= 2
),
managed as (
    select touchpoint, avg(is_managed::integer) >= 0.5 as is_managed
    from core.events
    group by touchpoint
),
markov as (
    select value as touchpoint, conversions / nullif(sum(conversions) over (), 0) as removal_effect
    from marts.attribution
    where model = 'markov' and dimension = 'touchpoint'
),
to_next as (
    select from_touchpoint as touchpoint, median(seconds)::double as median_seconds_to_next
    from marts.journey_edges
    group by from_touchpoint
),
scored as (
    select
        through.touchpoint,
        managed.is_managed,
        through.journeys_through,
        through.journeys_through / totals.journeys as reach,
        coalesce(through.converted_through / nullif(totals.converted, 0), 0)::double
            as converted_share,
        coalesce(through.dropped_through / nullif(totals.dropped, 0), 0)::double as dropped_share,
        case when totals.converted > 0 then converted_share / nullif(dropped_share, 0) end as lift,
        coalesce(dropoffs.dropoff_rate, 0)::double as dropoff_rate,
        coalesce(dropoffs.leakage_rate, 0)::double as leakage_rate,
        markov.removal_effect::double as removal_effect,
        to_next.median_seconds_to_next,
        case when period_totals.periods = 2
            then coalesce(by_period.through_latest, 0) / period_totals.latest end as reach_latest,
        case when period_totals.periods = 2
            then coalesce(by_period.through_previous, 0) / period_totals.previous
        end as reach_previous,
        case when by_period.through_previous >= $min_trend_journeys
            then reach_latest / nullif(reach_previous, 0) - 1 end as reach_trend,
        coalesce(lift >= $strong_lift, false) as works
    from through
    cross join totals
    cross join period_totals
    left join managed using (touchpoint)
    left join marts.dropoffs as dropoffs using (touchpoint)
    left join markov using (touchpoint)
    left join to_next using (touchpoint)
    left join by_period using (touchpoint)
),
rules as (
    select
        *,
        works and reach >= $min_reach as strong,
        dropoff_rate >= $weak_dropoff_rate as ends_here,
        coalesce(lift <= $weak_lift, false) as lifts_drop_offs,
        works and reach < $min_reach as few_reach,
        leakage_rate >= $leakage_rate as leaks,
        coalesce(reach_trend <= $falling_reach, false) as falling,
        is_managed is false and dropoff_rate >= $weak_dropoff_rate as lost_unmanaged
    from scored
),
final as (
    select
        touchpoint,
        is_managed,
        journeys_through,
        reach,
        converted_share,
        dropped_share,
        lift,
        dropoff_rate,
        leakage_rate,
        removal_effect,
        median_seconds_to_next,
        reach_latest,
        reach_previous,
        reach_trend,
        strong as is_strength,
        ends_here or lifts_drop_offs as is_weakness,
        few_reach or leaks as is_opportunity,
        falling or lost_unmanaged as is_threat,
        concat_ws('; ',
            case when strong then format(
                'strength: {:.0f}% of journeys pass it, buyers {:.2f}x as often as drop-offs',
                100 * reach, lift
            ) end,
            case when ends_here then format(
                'weakness: {:.0f}% of the journeys through it end there', 100 * dropoff_rate
            ) end,
            case when lifts_drop_offs then format(
                'weakness: lift {:.2f}, drop-offs pass it more often than buyers', lift
            ) end,
            case when few_reach then format(
                'opportunity: lift {:.2f}, but only {:.0f}% of journeys reach it', lift, 100 * reach
            ) end,
            case when leaks then format(
                'opportunity: {:.0f}% of the journeys through it leave to buy offline',
                100 * leakage_rate
            ) end,
            case when falling then format(
                'threat: its reach fell {:.0f}% since the period before', -100 * reach_trend
            ) end,
            case when lost_unmanaged then format(
                'threat: unmanaged, and {:.0f}% of the journeys through it end there',
                100 * dropoff_rate
            ) end
        ) as swot
    from rules
)
select * from final order by touchpoint
