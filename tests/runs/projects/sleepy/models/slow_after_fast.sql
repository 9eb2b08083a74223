-- Starts when fast has finished: a node whose start moves neither progress count.
select f.id from {{ ref('fast') }} as f cross join (select pg_sleep({{ var('sleep_seconds') }})) as s
