"""What collectors send: applying uplink envelopes (readings, states, events, results) and the
collector's own messages (heartbeat, hello)."""
