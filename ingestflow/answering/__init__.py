"""Answering: search (vector, lexical, hybrid), retrieval with graph expansion, chat, extractive answers, summaries."""
