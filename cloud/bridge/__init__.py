"""The MQTT bridge (`gridvend cloud bridge`): the broker link, ingest of uplinks, command
dispatch, lost contact, archive runs and the north topics for third parties."""
