-- core.customers: one row per identifier, mapping it to the customer it belongs to.
create table if not exists core.customers (
    identifier_type varchar not null,
    identifier_value varchar not null,
    customer_key varchar not null,
    primary key (identifier_type, identifier_value)
);
