"""The legacy rules engine: declarative rule sets per entity type, executed in Python.

Django-free. `rulesets` declares what each entity's output is; `engine` streams raw.* rows
through those declarations and writes rules_engine.* in bulk.
"""
