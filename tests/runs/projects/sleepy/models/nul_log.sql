-- Logs a line holding a NUL byte (PostgreSQL refuses it in text), then sleeps: the worker's
-- log write fails while dbt still runs.
{% if execute %}{{ log("a line holding a NUL byte: \x00", info=True) }}{% endif %}
select 1 as id from (select pg_sleep({{ var('sleep_seconds') }})) as s
