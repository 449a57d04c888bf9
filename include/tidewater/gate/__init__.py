"""The data quality gate between the warehouse and the published marts (Great Expectations 1.x).

stage (copy the marts out of the warehouse) → validate (checkpoints, data docs) → publish (atomic swap),
or fail naming what failed. Suites are data in `suites`; GX itself is only imported by `context`.
"""
