-- First start of the compose PostgreSQL: the warehouse database dbt builds into, owned by
-- its own role. Replace the password (it must match WAREHOUSE_PASSWORD) before the first start.
CREATE ROLE dbt LOGIN PASSWORD 'change-me-warehouse';
CREATE DATABASE warehouse OWNER dbt;
