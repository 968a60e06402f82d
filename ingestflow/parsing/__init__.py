"""Documents in, DoclingDocuments and chunks out: conversion (docling, plus a rebuild of the native PDF pipeline's
output and OCR of pages without text), chunking by tokens, and the saved JSON between the parse and chunk stages.

The conversion runs in a warm child process (worker) after cheap structural checks (limits). Heavy libraries
(docling pulls in torch, ~6 s) are imported inside functions: flow processes import these modules just to reference
the task functions. Converters, the OCR engine and tokenizers are built once per process and cached.
"""
