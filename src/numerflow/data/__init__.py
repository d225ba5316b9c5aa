"""data/ room: see ../shared/ARCHITECTURE.md."""
