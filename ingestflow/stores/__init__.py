"""Stores: vectors (Chroma), lexical rows (PostgreSQL), uploaded files, the knowledge graph."""
