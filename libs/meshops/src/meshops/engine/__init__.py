"""Local execution: Spark session factory, notebook runner, dbutils compatibility, DAG scheduler."""
