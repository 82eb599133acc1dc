"""Date and time formats of the admin and the dashboard's pages (FORMAT_MODULE_PATH)."""
