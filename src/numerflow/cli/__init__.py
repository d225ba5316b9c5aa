"""cli/: Typer commands. Each is a few lines that call the rooms below, then render with Rich."""
