{# what validation's dbt parse saw of the portal's own connection variables #}
{{ config(meta={
    "parse_password": env_var("DBT_PASSWORD", "absent"),
    "parse_user": env_var("DBT_USER", "absent"),
}) }}
select
    '{{ env_var("SECRET_KEY", "absent") }}' as secret_key,
    '{{ env_var("DATABASE_URL", "absent") }}' as database_url,
    '{{ env_var("REDIS_URL", "absent") }}' as redis_url,
    '{{ env_var("PROBE_DECLARED", "absent") }}' as declared,
    '{{ env_var("DBT_VAR_PROBE", "absent") }}' as project_var
