-- keyed_hashes: one row per distinct value of the frame `_values`: its HMAC-SHA256 in hex (RFC 2104),
-- H((K xor opad) || H((K xor ipad) || value)), with the key's padded blocks given as $inner and $outer.
-- privacy.keyed_hash checks it against Python's hmac.
with

values_to_hash as (
    select value from _values
),

final as (
    select
        value,
        sha256($outer::blob || unhex(sha256($inner::blob || encode(value)))) as digest
    from values_to_hash
)

select * from final
