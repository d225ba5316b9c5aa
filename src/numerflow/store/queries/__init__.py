"""Query functions by concern: every SELECT, INSERT, UPDATE and DELETE the rooms need."""
