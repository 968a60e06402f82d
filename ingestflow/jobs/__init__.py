"""Jobs: dispatch to Prefect, cancel and delete, the job view, progress, purge, backfill."""
