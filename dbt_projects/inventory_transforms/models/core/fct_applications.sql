-- Applications with their owner resolved against the directory. Applications whose
-- owner has left or is unknown are kept and flagged through owner_status.
select
    applications.application_id,
    applications.application_name,
    applications.owner_email,
    users.user_id as owner_user_id,
    case
        when users.user_id is null then 'unknown'
        when users.is_active then 'active'
        else 'departed'
    end as owner_status,
    applications.department,
    applications.created_at
from {{ ref('stg_applications') }} as applications
left join {{ ref('fct_users') }} as users
    on users.email = applications.owner_email
