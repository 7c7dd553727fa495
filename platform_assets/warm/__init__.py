"""Warm processes: dbt invocations and Dagster runs fork from a server that has imported
dbt and Dagster once (server.py), reached by dagster-dbt's dbt executable (client.py) and the
local instance's run launcher (launcher.py)."""
