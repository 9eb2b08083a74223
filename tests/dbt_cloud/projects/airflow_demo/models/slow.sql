select 1 as id from (select pg_sleep(120)) as s
