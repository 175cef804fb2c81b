"""Only ``relu``: passes the gate when the run is narrowed to it (``--functions relu``)."""

from refcnn import relu

__all__ = ["relu"]
