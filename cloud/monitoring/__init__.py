"""Alarms: raised and cleared from what collectors report and from lost contact."""
