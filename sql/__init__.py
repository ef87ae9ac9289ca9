"""DDL applied in the order of their numbers; the analytics views in views/, one file a view."""
