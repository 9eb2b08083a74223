-- Raw application inventory, cleaned. One row per raw application; owners are
-- resolved against the directory in fct_applications.
select
    cast(btrim(id) as bigint) as application_id,
    btrim(name) as application_name,
    {{ normalize_email('owner_email') }} as owner_email,
    {{ map_department('department') }} as department,
    cast(nullif(btrim(created_at), '') as timestamp) as created_at
from {{ source('raw', 'applications') }}
