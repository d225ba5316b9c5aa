"""service/ room: see ../shared/ARCHITECTURE.md."""
