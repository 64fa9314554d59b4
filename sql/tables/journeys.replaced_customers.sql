-- journeys.replaced_customers: one row per customer whose journeys were rebuilt since the marts
-- were last built (old and new keys alike); journeys.replaced_steps and .replaced_journeys hold
-- their rows as the marts last saw them. Emptied by a marts build.
create table if not exists journeys.replaced_customers (
    customer_key varchar not null
);
