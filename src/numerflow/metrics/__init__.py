"""metrics/ room: see ../shared/ARCHITECTURE.md."""
