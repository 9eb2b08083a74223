-- Applications whose owner is not an active person in fct_users: the owner left,
-- the owner email is not in the directory, or no owner is recorded.
--
-- Warn severity on purpose: an orphaned application is a real business state that
-- someone has to act on (reassign the owner), not a defect in the pipeline. The rows
-- stay in fct_applications with owner_status 'departed' or 'unknown'; failing the
-- build would block every refresh until the business fixes its data.
{{ config(severity='warn') }}

select
    applications.application_id,
    applications.application_name,
    applications.owner_email
from {{ ref('fct_applications') }} as applications
left join {{ ref('fct_users') }} as users
    on users.email = applications.owner_email
    and users.is_active
where users.user_id is null
