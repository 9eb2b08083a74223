select 1 as id from (select pg_sleep({{ var('sleep_seconds') }})) as s
