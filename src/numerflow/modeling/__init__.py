"""modeling/ room: see ../shared/ARCHITECTURE.md."""
