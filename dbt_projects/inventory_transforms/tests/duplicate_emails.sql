-- No two people in fct_users may share an email, compared case- and
-- padding-insensitively, independently of how the model normalises emails.
-- Error severity: a duplicate person double-counts licences and owners downstream.
{{ config(severity='error') }}

select
    lower(btrim(email)) as email_key,
    count(*) as people
from {{ ref('fct_users') }}
group by lower(btrim(email))
having count(*) > 1
