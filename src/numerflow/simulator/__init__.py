"""simulator/ room: see ../shared/ARCHITECTURE.md."""
