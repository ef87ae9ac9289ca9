"""The analytics views, one file each (see load/views.py)."""
