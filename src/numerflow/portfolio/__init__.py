"""The money side: a ledger with Numerai's payout rules, walk-forward backtests, risk analytics, stake
allocation and performance attribution. Plain arrays and frames in; no database."""
