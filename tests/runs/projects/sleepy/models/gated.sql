-- Waits while a test holds advisory lock 4242 in the warehouse: the test decides when it ends.
select 1 as id from (select pg_advisory_xact_lock_shared(4242)) as g
