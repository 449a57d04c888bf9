"""Earlier implementations kept as benchmark contenders (not product code: nothing in include/ imports them)."""
