-- segment_file: one row per line of the Segment JSON-lines file $path, in file order, with every
-- field the Segment parser reads as JSON text (a string keeps its quotes; null when the field is
-- absent or JSON null).
-- DuckDB's reader parses each line once, on every core. It refuses the whole file when a line is
-- not JSON, repeats a key, or holds something else where an object belongs (properties, traits,
-- context, context.page, context.traits); the Python parser then reads that file line by line.
-- A blank line is skipped here, so the caller checks that the row count is the line count.
with

messages as (
    select *
    from read_json(
        $path,
        format = 'newline_delimited',
        records = true,
        maximum_object_size = 16777216,
        columns = {
            'type': 'JSON',
            'event': 'JSON',
            'name': 'JSON',
            'messageId': 'JSON',
            'anonymousId': 'JSON',
            'userId': 'JSON',
            'timestamp': 'JSON',
            'sentAt': 'JSON',
            'receivedAt': 'JSON',
            'originalTimestamp': 'JSON',
            'properties': 'MAP(VARCHAR, JSON)',
            'traits': 'MAP(VARCHAR, JSON)',
            'context': 'STRUCT(
                page STRUCT(url JSON, referrer JSON),
                campaign JSON,
                app JSON,
                traits MAP(VARCHAR, JSON)
            )'
        }
    )
),

final as (
    select
        type,
        event,
        name,
        messageId as message_id,
        anonymousId as anonymous_id,
        userId as user_id,
        timestamp,
        sentAt as sent_at,
        receivedAt as received_at,
        originalTimestamp is not null as has_original_timestamp,
        to_json(properties) as properties,
        -- keys that would replace what ingest adds to properties
        coalesce(
            map_contains(properties, 'url')
            or map_contains(properties, 'referrer')
            or map_contains(properties, 'campaign')
            or map_contains(properties, 'device'),
            false
        ) as properties_shadow_extra,
        properties['order_id'] as order_id,
        properties['store_id'] as store_id,
        properties['product_id'] as product_id,
        properties['category'] as category,
        properties['fulfilment'] as fulfilment,
        properties['revenue'] as revenue,
        properties['currency'] as currency,
        case when left(properties['products']::varchar, 1) = '[' then
            json_extract(properties['products'], '$[0].product_id')
        end as first_product_id,
        case when left(properties['products']::varchar, 1) = '[' then
            json_extract(properties['products'], '$[0].category')
        end as first_product_category,
        context.page.url as page_url,
        context.page.referrer as page_referrer,
        context.campaign as campaign,
        context.app is not null as has_app,
        -- a non-empty traits object wins over context.traits, as in Segment's identify
        case
            when cardinality(traits) > 0 then traits['email'] else context.traits['email']
        end as email,
        case
            when cardinality(traits) > 0 then traits['phone'] else context.traits['phone']
        end as phone
    from messages
)

select * from final
