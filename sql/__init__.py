"""DDL and analytics views, applied in the order of their numbers."""
