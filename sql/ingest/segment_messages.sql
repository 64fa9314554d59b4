-- segment_messages(paths): one row per line of the Segment JSON-lines files, in file order, the top-level fields
-- segment_files.sql reads as JSON text. DuckDB's own reader: every core, one pass; it refuses the whole read when a
-- line is not JSON, repeats a key, or holds something else where an object belongs (context, context.page), and
-- skips blank lines. For files it refused, segment_messages_checked.sql defines the same macro line by line.
create or replace temp macro segment_messages(paths) as table
    select *, true as is_readable
    from read_json(
        paths,
        format = 'newline_delimited',
        records = true,
        filename = true,
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
            'properties': 'JSON',
            'traits': 'JSON',
            'context': 'STRUCT(
                page STRUCT(url JSON, referrer JSON),
                campaign JSON,
                app JSON,
                traits JSON
            )'
        }
    );
