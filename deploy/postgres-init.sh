#!/bin/sh
# First start of the compose PostgreSQL: the warehouse database dbt builds into, owned by its
# own role, with the password compose passes in (WAREHOUSE_PASSWORD).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$WAREHOUSE_PASSWORD" <<'SQL'
CREATE ROLE dbt LOGIN PASSWORD :'password';
CREATE DATABASE warehouse OWNER dbt;
SQL
