# Databricks notebook source
# MAGIC %fs mkdirs dbfs:/tmp/compat/fs_magic

# COMMAND ----------

dbutils.fs.put("dbfs:/tmp/compat/fs_magic/a.txt", "alpha", True)

# COMMAND ----------

# MAGIC %fs cp dbfs:/tmp/compat/fs_magic/a.txt dbfs:/tmp/compat/fs_magic/b.txt

# COMMAND ----------

# MAGIC %fs rm dbfs:/tmp/compat/fs_magic/a.txt

# COMMAND ----------

# MAGIC %fs ls dbfs:/tmp/compat/fs_magic

# COMMAND ----------

dbutils.notebook.exit(",".join(sorted(f.name for f in dbutils.fs.ls("dbfs:/tmp/compat/fs_magic"))))
