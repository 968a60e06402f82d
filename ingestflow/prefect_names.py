"""Names of the Prefect objects ingestflow creates (prefect.yaml declares the deployments under the same names)."""

WORK_POOL = "ingestflow"
DOCUMENT_DEPLOYMENT = "ingest-document/ingest-document"
BATCH_DEPLOYMENT = "ingest-batch/ingest-batch"
CRASH_AUTOMATION = "ingestflow-crashed-on-missing-heartbeat"
BACKFILL_DEPLOYMENT = "backfill/backfill"
RETENTION_DEPLOYMENT = "retention/retention"
NOTIFY_DEPLOYMENT = "notify/notify"
