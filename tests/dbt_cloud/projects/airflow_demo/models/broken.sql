select * from airflow_demo_missing_schema.no_such_table
