"""Query functions, one module per concern: the only way other rooms reach the database."""
