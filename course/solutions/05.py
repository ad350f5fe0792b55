# Databricks notebook source
# SOLUTION 05.1
import yaml

domain_file = "orgs/acme/domains/transport/domain.yml"
with open(domain_file, encoding="utf-8") as handle:
    domain = yaml.safe_load(handle)
if "course-auditors" not in domain.get("readers", []):
    domain.setdefault("readers", []).append("course-auditors")
with open(domain_file, "w", encoding="utf-8") as handle:
    yaml.safe_dump(domain, handle, sort_keys=False)

# COMMAND ----------

# SOLUTION 05.2
payload = json.loads(
    sh(f"{sys.executable} -m meshops plan --flow {REVENUE} --env dev --json 2>/dev/null")
)
revenue_tasks = [task["task_key"] for task in payload[0]["settings"]["tasks"]]
answer("05", revenue_tasks=revenue_tasks)
