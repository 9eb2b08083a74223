select id from {{ ref('base') }}
