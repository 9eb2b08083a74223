from __future__ import annotations

from django.db import migrations

# Revocation is final in the database itself: once revoked_at is set, no UPDATE may clear
# or move it (the admin shows it read-only; this stops a direct write too).
FORWARD = """
CREATE FUNCTION accounts_apitoken_keep_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'API token % is revoked; revocation is final', OLD.prefix
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_apitoken_revoked_is_final
    BEFORE UPDATE ON accounts_apitoken
    FOR EACH ROW EXECUTE FUNCTION accounts_apitoken_keep_revoked();
"""
BACKWARD = """
DROP TRIGGER accounts_apitoken_revoked_is_final ON accounts_apitoken;
DROP FUNCTION accounts_apitoken_keep_revoked();
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_roles")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
