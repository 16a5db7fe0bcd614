"""The park as the office set it up: sites, buildings, floors, units, collectors, buses and
meters, the site defaults (F13), the meter board query, and imports from sheets (F11, F43)."""
