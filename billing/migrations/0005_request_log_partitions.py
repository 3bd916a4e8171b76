"""PostgreSQL: billing_requestlog becomes partitioned by month of created_at.

Unique keys of a partitioned table must contain the partition key, so the primary key becomes
(id, created_at) and request_id's uniqueness becomes (request_id, created_at): a usage event
delivered twice carries the same timestamp, so ON CONFLICT DO NOTHING still skips it. Index names
stay those Django knows. Other databases are left as they are.
"""

from django.db import migrations

FORWARD = """
ALTER TABLE billing_requestlog RENAME TO billing_requestlog_unpartitioned;
ALTER INDEX billing_req_key_id_6750ce_idx RENAME TO billing_req_key_id_old;
ALTER INDEX billing_req_team_id_0abe60_idx RENAME TO billing_req_team_id_old;
ALTER INDEX billing_req_organiz_210e8a_idx RENAME TO billing_req_organiz_old;
ALTER INDEX billing_requestlog_created_at_0133e621 RENAME TO billing_req_created_at_old;
ALTER TABLE billing_requestlog_unpartitioned
    RENAME CONSTRAINT billing_requestlog_pkey TO billing_requestlog_old_pkey;
CREATE TABLE billing_requestlog (
    LIKE billing_requestlog_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
) PARTITION BY RANGE (created_at);
CREATE SEQUENCE billing_requestlog_part_id_seq OWNED BY billing_requestlog.id;
SELECT setval(
    'billing_requestlog_part_id_seq',
    COALESCE((SELECT MAX(id) FROM billing_requestlog_unpartitioned), 0) + 1,
    false
);
ALTER TABLE billing_requestlog ALTER COLUMN id SET DEFAULT nextval('billing_requestlog_part_id_seq');
ALTER TABLE billing_requestlog ADD CONSTRAINT billing_requestlog_pkey PRIMARY KEY (id, created_at);
ALTER TABLE billing_requestlog
    ADD CONSTRAINT billing_requestlog_request_id_uniq UNIQUE (request_id, created_at);
CREATE INDEX billing_requestlog_created_at_0133e621 ON billing_requestlog (created_at);
CREATE INDEX billing_req_key_id_6750ce_idx ON billing_requestlog (key_id, created_at);
CREATE INDEX billing_req_team_id_0abe60_idx ON billing_requestlog (team_id, created_at);
CREATE INDEX billing_req_organiz_210e8a_idx ON billing_requestlog (organization_id, created_at);
CREATE TABLE billing_requestlog_default PARTITION OF billing_requestlog DEFAULT;
DO $$
DECLARE
    month date := date_trunc('month', COALESCE(
        (SELECT MIN(created_at) FROM billing_requestlog_unpartitioned), now()
    ) AT TIME ZONE 'UTC')::date;
    last date := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months')::date;
BEGIN
    WHILE month <= last LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF billing_requestlog FOR VALUES FROM (%L) TO (%L)',
            'billing_requestlog_p' || to_char(month, 'YYYYMM'),
            month::text,
            (month + interval '1 month')::date::text
        );
        month := (month + interval '1 month')::date;
    END LOOP;
END $$;
INSERT INTO billing_requestlog SELECT * FROM billing_requestlog_unpartitioned;
DROP TABLE billing_requestlog_unpartitioned;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'billing_requestlog'::regclass"
        )
        if cursor.fetchone():
            # Already partitioned: the reverse is a no-op, so migrating back and forth lands here.
            return
    # Partition bounds below are dates read in the session's time zone: make it UTC.
    schema_editor.execute("SET LOCAL TIME ZONE 'UTC'")
    schema_editor.execute(FORWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_usage_rollups")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
