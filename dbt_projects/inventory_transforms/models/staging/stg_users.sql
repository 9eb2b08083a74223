-- One row per person: raw directory accounts cleaned, then duplicate accounts
-- (same normalised email) collapsed to a single survivor. See README.md for the rules.
with accounts as (

    select
        cast(btrim(id) as bigint) as user_id,
        {{ normalize_email('email') }} as email,
        btrim(full_name) as full_name,
        {{ map_department('department') }} as department,
        coalesce(lower(btrim(status)) in ('active', 'enabled'), false) as is_active,
        cast(nullif(btrim(updated_at), '') as timestamp) as updated_at
    from {{ source('raw', 'users') }}

),

ranked as (

    select
        accounts.*,
        row_number() over (
            partition by email
            order by is_active desc, updated_at desc nulls last, user_id asc
        ) as account_rank
    from accounts
    -- accounts without an email (service accounts, half-created rows) are not people
    where email is not null

)

select
    user_id,
    email,
    full_name,
    department,
    is_active,
    updated_at
from ranked
where account_rank = 1
