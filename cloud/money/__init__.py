"""Money: sales, refunds, reversals and transfers-in (two-phase: applied only when the collector
confirms), accounts and their settlement, the ledger mirror and its cross-check."""
