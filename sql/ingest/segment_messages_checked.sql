-- segment_messages(paths), checked line by line: the same rows as segment_messages.sql for the files DuckDB's
-- reader refused, one per line (blank lines too), with is_readable false for a line its reader would have refused:
-- not JSON, not an object, a repeated key at the top level, in context or in context.page, or a context or
-- context.page that is not an object. Those lines go to the Python parser; the others are decided as usual, so one
-- bad line no longer costs the file a read per bad line. Slower than the reader (each line is parsed twice), so it
-- is only the second try.
create or replace temp macro segment_messages(paths) as table
    with

    files as (
        select filename, list_position(paths, filename) as file_index, string_split(content, chr(10)) as lines
        from read_text(paths)
    ),

    numbered as (
        select
            file_index,
            filename,
            unnest(lines) as line,
            unnest(range(1, len(lines) + 1)) as line_number,
            len(lines) as last_line
        from files
    ),

    checked as (
        select
            *,
            coalesce(case when json_valid(line) then json_type(line) = 'OBJECT' end, false) as is_object
        from numbered
        -- the empty piece after a file's last newline is not a line
        where not (line_number = last_line and line = '')
    ),

    parts as (
        select
            *,
            if(is_object, json_keys(line), null) as top_keys,
            if(is_object, json_extract(line, '$.context'), null) as context
        from checked
    ),

    readable as (
        select
            *,
            is_object
            and len(top_keys) = len(list_distinct(top_keys))
            and (
                context is null
                or json_type(context) = 'NULL'
                or (
                    json_type(context) = 'OBJECT'
                    and len(json_keys(context)) = len(list_distinct(json_keys(context)))
                    and (
                        json_extract(context, '$.page') is null
                        or json_type(json_extract(context, '$.page')) in ('NULL', 'OBJECT')
                    )
                    and (
                        json_type(json_extract(context, '$.page')) is distinct from 'OBJECT'
                        or len(json_keys(json_extract(context, '$.page')))
                        = len(list_distinct(json_keys(json_extract(context, '$.page'))))
                    )
                )
            ) as is_readable
        from parts
    ),

    final as (
        select
            unnest(
                json_transform(
                    if(is_readable, line, null),
                    '{"type": "JSON", "event": "JSON", "name": "JSON", "messageId": "JSON",
                      "anonymousId": "JSON", "userId": "JSON", "timestamp": "JSON", "sentAt": "JSON",
                      "receivedAt": "JSON", "originalTimestamp": "JSON", "properties": "JSON",
                      "traits": "JSON",
                      "context": {"page": {"url": "JSON", "referrer": "JSON"}, "campaign": "JSON",
                                  "app": "JSON", "traits": "JSON"}}'
                )
            ),
            filename,
            coalesce(is_readable, false) as is_readable,
            file_index,
            line_number
        from readable
    )

    select * exclude (file_index, line_number) from final order by file_index, line_number;
