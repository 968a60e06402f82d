"""Recordings: probe, transcribe with faster-whisper, clean up deterministically, render, and chunk by time.

Everything here is a plain function over files and dataclasses so the Prefect tasks stay thin. faster-whisper
pulls in CTranslate2 (~1 s) and PyAV is only needed when a file is actually read, so both are imported inside
functions: flow processes import these modules just to reference the task functions.

Timestamps are plain floats in seconds throughout; faster-whisper hands out numpy scalars, which are converted
at the boundary so a Transcript always survives `json.dumps`.
"""
