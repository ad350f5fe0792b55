# Databricks notebook source
# SOLUTION 02.1
import yaml

from meshops.course import solution_file

solution_file("02", "payments.py", f"{REVENUE}/payments.py")
solution_file("02", "revenue_by_payment.py", f"{REVENUE}/revenue_by_payment.py")
solution_file("02", "test_revenue_by_payment.py", f"{REVENUE}/tests/test_revenue_by_payment.py")
spec_file = f"{REVENUE}/deployment.yml"
with open(spec_file, encoding="utf-8") as handle:
    flow_spec = yaml.safe_load(handle)
if all(t["task_key"] != "revenue_by_payment" for t in flow_spec["tasks"]):
    flow_spec["tasks"].append({"task_key": "revenue_by_payment"})
with open(spec_file, "w", encoding="utf-8") as handle:
    yaml.safe_dump(flow_spec, handle, sort_keys=False)

# COMMAND ----------

# SOLUTION 02.2
solution_file("02", "payments_avg_tip.py", f"{REVENUE}/payments.py")
solution_file(
    "02", "test_revenue_by_payment_avg_tip.py", f"{REVENUE}/tests/test_revenue_by_payment.py"
)
