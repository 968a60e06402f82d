"""Jobs: dispatch to Prefect, the scheduler of a run's stages, cancel and delete, the job view, progress, purge,
backfill."""
