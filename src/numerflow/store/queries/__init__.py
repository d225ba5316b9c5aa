"""Query functions by concern, one module per room that needs SQL: every SELECT, INSERT, UPDATE and DELETE."""
