{{ config(pre_hook=[{"sql": "create schema if not exists airflow_demo_state; create sequence if not exists airflow_demo_state.flaky_builds", "transaction": false}]) }}
-- division by zero on the first build only
select b.id from {{ ref('base') }} as b where 1 / (nextval('airflow_demo_state.flaky_builds') - 1) > 0
