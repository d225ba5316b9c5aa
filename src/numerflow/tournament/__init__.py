"""tournament/ room: see ../shared/ARCHITECTURE.md."""
