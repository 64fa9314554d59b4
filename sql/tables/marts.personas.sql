-- marts.personas: one row per persona (customers clustered by behaviour, personas.py), the
-- largest first, with a name and a description made from its numbers. Averages are over its
-- customers; conversion_rate is its conversions over its closed journeys; days_to_convert the
-- median over its customers who converted.
create table if not exists marts.personas (
    persona integer not null,           -- 1 .. k, by size
    name varchar not null,              -- e.g. "Online researchers who buy in store"
    description varchar not null,
    customers bigint not null,
    share_of_customers double not null,
    journeys bigint not null,
    conversions bigint not null,
    conversion_rate double not null,
    revenue double not null,
    basket_value double not null,       -- mean revenue of its customers' converted journeys
    journeys_per_customer double not null,
    online_share double not null,       -- of its steps, in [leakage] online_channels
    offline_share double not null,      -- ... in offline_channels
    furthest_stage double not null,     -- 0 none, 1 awareness .. 6 loyalty
    days_to_convert double,
    ropo_share double not null,         -- of its journeys, with the pattern
    click_and_collect_share double not null,
    try_and_buy_share double not null,
    recency_days double not null,       -- from a customer's last journey end to the end of the data
    typical_path varchar                -- its most common cleaned path (marts.persona_paths rank 1)
);
