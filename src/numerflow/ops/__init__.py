"""ops/: running numerflow unattended: backup and restore (``backup``), alerts and their channels
(``alerts``). Imports store and config only."""
