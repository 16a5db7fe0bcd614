"""The `gridvend` console script (`gridvend.cli`): one entry point, one sub-command per area."""
