select * from retryable_missing_schema.no_such_table
