"""Reports (sales, energy, lost contact), the site's local calendar, daily rollups and the
archive of old readings (F03)."""
