-- segment_files: one row per line of the Segment JSON-lines files $paths, in file order, with
-- is_sure: whether the line can be taken without the Python parser (ingest._segment_row, the
-- reference), and for those lines the values it would give.
-- The lines come from the macro segment_messages: DuckDB's reader (segment_messages.sql), which
-- parses each line once, on every core, all files in one pass, but refuses the whole read when
-- a line is not JSON, repeats a key, or holds something else where an object belongs, and skips
-- blank lines (the caller checks each file's row count against its lines); or, for the files
-- it refused, each line checked on its own (segment_messages_checked.sql), whose is_readable is
-- false for the lines the reader would refuse.
--
-- A line is sure when every field it uses has a plain shape, and is otherwise left to Python:
-- strings without escapes or blanks at either end (what Python's str.strip() removes, the
-- separators \x1c-\x1f included), integers, zoned ISO-8601 times, amounts with at most two
-- decimals, properties and traits that are objects without a repeated key. The type, the event name and blocked identifiers are checked in
-- ``_segment_columns``, as are masking ``properties`` and the query strings of URLs: a test
-- of membership in a list may become a join here, and a join does not keep the file order
-- the line numbers are counted from.
with

messages as (
    -- segment_messages: DuckDB's reader (sql/ingest/segment_messages.sql), or, for files it
    -- refused, each line checked on its own (segment_messages_checked.sql)
    select * from segment_messages($paths)
),

-- what the parser reads of the objects it opens, in one pass over each
objects as (
    select
        *,
        json_extract(
            properties,
            [
                '$.order_id', '$.store_id', '$.product_id', '$.category', '$.fulfilment',
                '$.revenue', '$.currency', '$.products[0].product_id', '$.products[0].category',
                '$.url', '$.referrer', '$.campaign', '$.device'
            ]
        ) as found,
        -- a non-empty traits object wins over context.traits, as in Segment's identify
        if(traits is not null and traits::varchar <> '{}', traits, context.traits) as identity,
        left(properties::varchar, 1) = '{' as is_properties_json_object,
        list_sort(json_keys(properties)) as properties_keys,
        -- Python rejects a traits that is not an object, ignores a context.traits that is not
        (traits is null or left(traits::varchar, 1) = '{')
        and (context.traits is null or left(context.traits::varchar, 1) = '{') as is_traits_object
    from messages
),

-- every field the parser reads, as JSON text (a string keeps its quotes; null when absent)
fields as (
    select
        filename,
        type::varchar as type,
        event::varchar as event,
        name::varchar as name,
        messageId::varchar as message_id,
        anonymousId::varchar as anonymous_id,
        userId::varchar as user_id,
        timestamp::varchar as timestamp,
        sentAt::varchar as sent_at,
        receivedAt::varchar as received_at,
        originalTimestamp is not null as has_original_timestamp,
        coalesce(properties::varchar, '{}') as properties,
        -- an object without a repeated key (Python keeps the last of two, DuckDB's paths
        -- find the first): sorted, equal keys would sit side by side
        properties is null or (
            is_properties_json_object
            and not coalesce(
                list_bool_or(
                    list_transform(
                        list_zip(properties_keys[:-2], properties_keys[2:]),
                        lambda pair: pair[1] = pair[2]
                    )
                ),
                false
            )
        ) as is_properties_object,
        is_traits_object,
        -- keys that would replace what ingest adds to properties
        coalesce(
            found[10] is not null
            or found[11] is not null
            or found[12] is not null
            or found[13] is not null,
            false
        ) as properties_shadow_extra,
        found[1]::varchar as order_id,
        found[2]::varchar as store_id,
        found[3]::varchar as product_id,
        found[4]::varchar as category,
        found[5]::varchar as fulfilment,
        found[6]::varchar as revenue,
        found[7]::varchar as currency,
        found[8]::varchar as first_product_id,
        found[9]::varchar as first_product_category,
        context.page.url::varchar as page_url,
        context.page.referrer::varchar as page_referrer,
        context.campaign::varchar as campaign,
        context.app is not null as has_app,
        is_readable,
        json_extract(identity, '$.email')::varchar as email,
        json_extract(identity, '$.phone')::varchar as phone
    from objects
),

-- the text ingest._text reads from each field: a string's content or an integer's digits
texts as (
    select
        *,
        -- all sixteen text fields in one match: each is absent, an integer Python prints the
        -- same way (no -0, no leading zeros), or a string without escapes or edge blanks
        regexp_full_match(
            concat_ws(
                chr(1),
                coalesce(type, ''), coalesce(event, ''), coalesce(name, ''),
                coalesce(message_id, ''), coalesce(anonymous_id, ''), coalesce(user_id, ''),
                coalesce(email, ''), coalesce(phone, ''), coalesce(order_id, ''),
                coalesce(store_id, ''), coalesce(product_id, ''), coalesce(category, ''),
                coalesce(fulfilment, ''), coalesce(currency, ''),
                coalesce(first_product_id, ''), coalesce(first_product_category, '')
            ),
            '(?:0|-?[1-9][0-9]{0,17}|"(?:[^\\"\t\n\x0b\x0c\r \x1c-\x1f\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}](?:[^\\"]*[^\\"\t\n\x0b\x0c\r \x1c-\x1f\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}])?)?")?'
            || '(?:\x01(?:0|-?[1-9][0-9]{0,17}|"(?:[^\\"\t\n\x0b\x0c\r \x1c-\x1f\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}](?:[^\\"]*[^\\"\t\n\x0b\x0c\r \x1c-\x1f\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}])?)?")?){15}'
        ) as is_plain,
        nullif(if(left(type, 1) = '"', type[2:-2], type), '') as type_text,
        nullif(if(left(event, 1) = '"', event[2:-2], event), '') as event_text,
        nullif(if(left(name, 1) = '"', name[2:-2], name), '') as name_text,
        nullif(if(left(message_id, 1) = '"', message_id[2:-2], message_id), '') as record_key,
        nullif(if(left(anonymous_id, 1) = '"', anonymous_id[2:-2], anonymous_id), '')
            as anonymous_id_text,
        nullif(if(left(user_id, 1) = '"', user_id[2:-2], user_id), '') as user_id_text,
        nullif(if(left(email, 1) = '"', email[2:-2], email), '') as email_text,
        nullif(if(left(phone, 1) = '"', phone[2:-2], phone), '') as phone_text,
        nullif(if(left(order_id, 1) = '"', order_id[2:-2], order_id), '') as order_id_text,
        nullif(if(left(store_id, 1) = '"', store_id[2:-2], store_id), '') as store_id_text,
        -- a missing, empty or zero product id or category falls back to the first product's
        case
            when product_id is null or product_id in ('""', '0') then
                nullif(
                    if(left(first_product_id, 1) = '"', first_product_id[2:-2], first_product_id),
                    ''
                )
            else nullif(if(left(product_id, 1) = '"', product_id[2:-2], product_id), '')
        end as product_id_text,
        case
            when category is null or category in ('""', '0') then
                nullif(
                    if(
                        left(first_product_category, 1) = '"',
                        first_product_category[2:-2],
                        first_product_category
                    ),
                    ''
                )
            else nullif(if(left(category, 1) = '"', category[2:-2], category), '')
        end as category_text,
        nullif(if(left(fulfilment, 1) = '"', fulfilment[2:-2], fulfilment), '')
            as fulfilment_text,
        nullif(if(left(currency, 1) = '"', currency[2:-2], currency), '') as currency_text,
        if(left(revenue, 1) = '"', revenue[2:-2], revenue) as revenue_text,
        -- zoned ISO-8601 times that Python's datetime.fromisoformat reads the same way
        case when regexp_full_match(
            timestamp,
            '"[1-8][0-9]{3}-[01][0-9]-[0-3][0-9]T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"'
        ) then try_cast(timestamp[2:-2] as timestamptz) end as timestamp_at,
        case when regexp_full_match(
            sent_at,
            '"[1-8][0-9]{3}-[01][0-9]-[0-3][0-9]T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"'
        ) then try_cast(sent_at[2:-2] as timestamptz) end as sent_at_at,
        case when regexp_full_match(
            received_at,
            '"[1-8][0-9]{3}-[01][0-9]-[0-3][0-9]T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"'
        ) then try_cast(received_at[2:-2] as timestamptz) end as received_at_at
    from fields
),

decided as (
    select
        *,
        case
            when type_text = 'identify' then 'identify'
            when type_text = 'track' then event_text
            else type_text || ':' || coalesce(name_text, '')
        end as event_name,
        -- Segment's clock correction: the device's offset between timestamp and sentAt
        -- survives any skew; an event cannot have happened after it arrived
        case
            when has_original_timestamp or sent_at_at is null or received_at_at is null
                then timestamp_at
            else least(received_at_at - (sent_at_at - timestamp_at), received_at_at)
        end as occurred_at,
        -- properties as ingest stores them: the page's URL and referrer, the campaign and the
        -- device, then the message's own properties (right only for a URL without a query
        -- string or fragment to strip: see is_simple)
        '{' || concat_ws(
            ',',
            if(page_url <> '""', '"url":' || page_url, null),
            if(page_referrer <> '""', '"referrer":' || page_referrer, null),
            if(campaign not in ('""', '{}'), '"campaign":' || campaign, null),
            if(has_app, '"device":"app"', '"device":"browser"'),
            if(properties <> '{}', properties[2:-2], null)
        ) || '}' as properties_stored,
        -- the referrer's host as urllib's urlsplit gives it, for a plain ASCII authority
        regexp_extract(
            page_referrer,
            '^"[A-Za-z][A-Za-z0-9+.-]*://([A-Za-z0-9._~!$&''()*+,;=%-]*)(?::[0-9]*)?(?:[/?#][^"]*)?"$',
            1
        ) as referrer_authority
    from texts
),

-- whether a sure line needs nothing more than this: no query string or fragment to strip
-- from a URL, a referrer whose host is read above, nothing that may be personal ($personal:
-- a personal key, an @, an international number, nine digits in a row); the other lines
-- take a second look in _segment_columns
simple as (
    select
        *,
        coalesce(
            (page_url is null or not regexp_matches(page_url, '[?#]'))
            and (
                page_referrer is null
                or page_referrer = '""'
                or (not regexp_matches(page_referrer, '[?#]') and referrer_authority <> '')
            )
            and not regexp_matches(properties_stored, $personal),
            false
        ) as is_simple
    from decided
),

final as (
    select
        filename,
        record_key,
        type_text as type,
        event_name,
        anonymous_id_text as anonymous_id,
        user_id_text as user_id,
        email_text as email,
        phone_text as phone,
        occurred_at,
        order_id_text as order_id,
        store_id_text as store_id,
        product_id_text as product_id,
        category_text as category,
        fulfilment_text as fulfilment,
        try_cast(revenue_text as decimal(18, 2)) as revenue,
        currency_text as currency,
        is_simple,
        if(is_simple, lower(nullif(referrer_authority, '')), null) as referrer_host,
        if(is_simple, properties_stored, properties) as properties,
        -- what the second look needs
        if(is_simple, null, page_url) as page_url,
        if(is_simple, null, page_referrer) as page_referrer,
        if(is_simple, null, campaign) as campaign,
        has_app,
        coalesce(
            is_readable
            and is_plain
            and is_properties_object
            and is_traits_object
            and record_key is not null
            and timestamp_at is not null
            and year(occurred_at) between 1000 and 8999
            and (sent_at is null or sent_at_at is not null)
            and (received_at is null or received_at_at is not null)
            and (revenue is null or regexp_full_match(revenue_text, '-?[0-9]{1,15}(\.[0-9]{1,2})?'))
            and not properties_shadow_extra
            and (page_url is null or (left(page_url, 1) = '"' and not contains(page_url, '\')))
            and (
                page_referrer is null
                or (left(page_referrer, 1) = '"' and not contains(page_referrer, '\'))
            )
            and (campaign is null or left(campaign, 1) in ('"', '{')),
            false
        ) as is_sure
    from simple
)

select * from final
