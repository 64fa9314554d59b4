-- marts.persona_transitions: one row per (persona, from_touchpoint, to_touchpoint): each
-- persona's journeys' edges -- the inner edges kept in marts.journey_edges, and the START and
-- end edges from the path ends kept in marts.journey_facts -- counted as in marts.transitions.
with
customer_journeys as (
    select
        facts.journey_id,
        journeys.customer_key,
        customer_personas.persona,
        facts.status,
        facts.entry_touchpoint,
        facts.exit_touchpoint
    from marts.journey_facts as facts
    inner join journeys.journeys as journeys using (journey_id)
    inner join marts.customer_personas as customer_personas using (customer_key)
),
edges as (
    select customer_journeys.persona, customer_journeys.customer_key, edges.from_touchpoint,
        edges.to_touchpoint, edges.seconds
    from marts.journey_edges as edges
    inner join customer_journeys using (journey_id)
    union all
    select persona, customer_key, 'START', entry_touchpoint, null
    from customer_journeys
    where entry_touchpoint is not null
    union all
    select persona, customer_key, exit_touchpoint,
        case status when 'converted' then 'CONVERSION' else 'DROP_OFF' end, null
    from customer_journeys
    where exit_touchpoint is not null and status <> 'open'
),
counted as (
    select
        persona,
        from_touchpoint,
        to_touchpoint,
        count(*) as transitions,
        count(distinct customer_key) as customers,
        median(seconds)::double as median_seconds,
        quantile_cont(seconds, 0.9)::double as p90_seconds
    from edges
    group by all
),
final as (
    select
        persona,
        from_touchpoint,
        to_touchpoint,
        transitions,
        customers,
        transitions / sum(transitions) over (partition by persona, from_touchpoint) as probability,
        median_seconds,
        p90_seconds
    from counted
)
select * from final order by persona, from_touchpoint, to_touchpoint
