select * from sleepy_missing_schema.no_such_table
