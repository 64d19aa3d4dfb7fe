"""Tests built from the official OpenAPI spec's examples and schemas (tests/fixtures/spec)."""
