"""`gridvend demo`: the whole system on embedded defaults (a simulated park, a private broker,
SQLite). It composes the cloud, the edge simulator and provisioning, so it sits beside them."""
