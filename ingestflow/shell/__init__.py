"""The application shell: the CLI, its API client, health checks, the embedded stack and the Dask worker's preloads."""
