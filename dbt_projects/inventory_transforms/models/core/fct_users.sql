-- The directory of people: one row per normalised email (see stg_users for the rules).
select
    user_id,
    email,
    full_name,
    department,
    is_active,
    updated_at
from {{ ref('stg_users') }}
