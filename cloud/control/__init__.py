"""Commands to collectors: issuing them, their lifecycle (B03), the send queue the bridge drains,
and the results collectors report."""
