-- core.events: one row per touchpoint event, whatever its source (DESIGN.md §3).
-- Its key (event_id) is unique by construction (a record is loaded once, and an event made
-- again replaces its row; checked by the tests), not declared: DuckDB's index on it doubled
-- a full load at 10M events (20 s against 9 s) and cost 1.1 s of a day's append.
create table if not exists core.events (
    event_id varchar not null,          -- '<source>:<source id>'
    source varchar not null,
    channel varchar not null,
    touchpoint varchar not null,
    stage varchar not null,
    is_managed boolean not null,
    is_conversion boolean not null,
    occurred_at timestamptz not null,
    ingested_at timestamptz not null,
    batch_id varchar not null,
    anonymous_id varchar,
    user_id varchar,
    email_hash varchar,
    phone_hash varchar,
    loyalty_id varchar,
    payment_hash varchar,
    customer_key varchar,
    order_id varchar,
    store_id varchar,
    product_id varchar,
    category varchar,
    fulfilment varchar,
    revenue decimal(18, 2),
    currency varchar,
    properties json
);
