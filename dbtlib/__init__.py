"""The Django-free dbt library: argv building and input checks, the warm launcher, one dbt
invocation, the manifest model, selectors, artifacts and log events. It imports no Django and
no app; its errors are its own (`dbtlib.errors`)."""
