"""Names shared by the bootstrap, the dispatcher and prefect.yaml."""

WORK_POOL = "ingestflow"
DOCUMENT_DEPLOYMENT = "ingest-document/ingest-document"
BATCH_DEPLOYMENT = "ingest-batch/ingest-batch"
CRASH_AUTOMATION = "ingestflow-crashed-on-missing-heartbeat"
BACKFILL_DEPLOYMENT = "backfill/backfill"
