"""All tables, one module per room that owns them. Importing this registers them on ``Base.metadata``."""

from numerflow.store.base import Base
from numerflow.store.tables.data import DatasetFile

__all__ = ["Base", "DatasetFile"]
