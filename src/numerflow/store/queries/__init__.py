"""Query functions grouped by concern: one module per room that needs SQL of its own."""
