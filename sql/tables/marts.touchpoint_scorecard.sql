-- marts.touchpoint_scorecard: one row per touchpoint of the closed journeys: the numbers that
-- say whether it helps or hurts, and its strengths, weaknesses, opportunities and threats by
-- the rules of [scorecard] (sql/marts/touchpoint_scorecard.sql states them).
create table if not exists marts.touchpoint_scorecard (
    touchpoint varchar not null,
    is_managed boolean,                 -- most of its events are managed (site, app, e-mail, store, call centre); false: reviews, forums, marketplaces, social
    journeys_through bigint not null,   -- closed journeys through it
    reach double not null,              -- journeys_through / closed journeys
    converted_share double not null,    -- of the converted journeys, those through it
    dropped_share double not null,      -- of the dropped journeys, those through it
    lift double,                        -- converted_share / dropped_share; null: no dropped journey passes it, or none converted
    dropoff_rate double not null,       -- dropped journeys ending there / journeys_through (marts.dropoffs)
    leakage_rate double not null,       -- journeys that left online there to buy offline / journeys_through
    removal_effect double,              -- its share of the Markov removal-effect credit (marts.attribution); null: no credit
    median_seconds_to_next double,      -- from it to the next touchpoint of the journey (marts.journey_edges)
    reach_latest double,                -- reach among the closed journeys of the latest settled period (marts.period_kpis)
    reach_previous double,              -- ... of the settled period before it
    reach_trend double,                 -- reach_latest / reach_previous - 1; null: no such two periods, or too few journeys through it before ([scorecard] min_trend_journeys)
    is_strength boolean not null,
    is_weakness boolean not null,
    is_opportunity boolean not null,
    is_threat boolean not null,
    swot varchar not null               -- the rules that hold, in words
);
