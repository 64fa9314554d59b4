-- marts.transition_nodes: one row per (segment, node) of the transition graph: visits and exits.
create table if not exists marts.transition_nodes (
    dimension varchar not null,         -- as in marts.transitions
    segment varchar not null,
    touchpoint varchar not null,        -- a touchpoint, START, CONVERSION or DROP_OFF
    visits bigint not null,             -- transitions into the node (START: journeys)
    journeys bigint not null,           -- distinct journeys that visit it
    customers bigint not null,
    conversions bigint not null,        -- moves from it to CONVERSION
    exits bigint not null,              -- moves from it to DROP_OFF
    exit_rate double not null,          -- exits / visits
    primary key (segment, touchpoint)
);
