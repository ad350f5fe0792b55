"""Unity Catalog SQL on the local session: catalogs, volumes, grants, settings, errors.

Each Spark test uses catalogs named after it, so tests sharing the process's session and
state folder never see each other's objects.
"""

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import SparkSession

from meshops.engine import session, unity
from meshops.engine.unity import DatabricksOnlyConfig, DatabricksOnlySyntax, UnityCatalogError
from meshops.errors import MeshopsError
from meshops.state import StatePaths

# ---- without a JVM -------------------------------------------------------------------------


class _Fake:
    """A py4j Java object as java_cause sees it: a throwable with a cause chain."""

    def __init__(self, cls: str, message: str, cause: "_Fake | None" = None, condition: str = ""):
        self.cls, self.message, self.cause, self.condition = cls, message, cause, condition

    def getCause(self) -> "_Fake | None":
        return self.cause

    def equals(self, other: object) -> bool:
        return self is other

    def getClass(self) -> Any:
        name = self.cls

        class _Class:
            def getName(self) -> str:
                return name

        return _Class()

    def getMessage(self) -> str:
        return self.message

    def getCondition(self) -> str | None:
        if not self.condition:
            raise AttributeError("not a SparkThrowable")  # py4j: no such method
        return self.condition


class _JavaError(Exception):
    def __init__(
        self, java_exception: Any, text: str = "An error occurred while calling o1.x."
    ) -> None:
        super().__init__(text)
        self.java_exception = java_exception


class _SparkError(Exception):
    def __init__(self, condition: str) -> None:
        super().__init__(f"[{condition}] at or near ...")
        self.condition = condition

    def getCondition(self) -> str:
        return self.condition


@pytest.mark.unit
def test_java_cause_prefers_the_spark_error_condition_of_the_chain() -> None:
    root = _Fake("java.io.FileNotFoundException", "/x (No such file)")
    spark_error = _Fake(
        "org.apache.spark.SparkClassNotFoundException",
        "[DATA_SOURCE_NOT_FOUND] Failed to find the data source: nope.\n\tat somewhere",
        cause=root,
        condition="DATA_SOURCE_NOT_FOUND",
    )
    wrapper = _Fake("java.lang.RuntimeException", "wrapped", cause=spark_error)

    assert unity.java_cause(_JavaError(wrapper)) == (
        "SparkClassNotFoundException: [DATA_SOURCE_NOT_FOUND] Failed to find the data source: nope."
    )


@pytest.mark.unit
def test_java_cause_without_a_condition_is_the_root_cause() -> None:
    root = _Fake("java.io.FileNotFoundException", "/data/x.csv (No such file or directory)")
    error = _Fake("org.apache.hadoop.SomeWrapper", "failed", cause=root)

    assert unity.java_cause(_JavaError(error)) == (
        "FileNotFoundException: /data/x.csv (No such file or directory)"
    )


@pytest.mark.unit
def test_java_cause_falls_back_to_the_py4j_text_when_the_jvm_is_gone() -> None:
    class _Gone:
        def getCause(self) -> None:
            raise ConnectionError("gateway closed")

    text = (
        "An error occurred while calling o224.load.\n"
        ": org.apache.spark.SparkClassNotFoundException: [DATA_SOURCE_NOT_FOUND] Failed to find "
        "the data source: nope.\n\tat org.apache.spark.X(X.scala:1)"
    )

    assert unity.java_cause(_JavaError(_Gone(), text)) == (
        "SparkClassNotFoundException: [DATA_SOURCE_NOT_FOUND] Failed to find the data source: nope."
    )
    assert unity.java_cause(ValueError("plain\nmore")) == "plain"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("COPY INTO a.b.c FROM '/Volumes/a/b/v' FILEFORMAT = CSV", "spark.read"),
        ("-- load\ncopy into t from (select 1) fileformat = parquet;", "saveAsTable"),
        ("CREATE OR REFRESH STREAMING TABLE t AS SELECT * FROM STREAM(s)", "streaming table"),
        ("CREATE MATERIALIZED VIEW mv AS SELECT 1", "CREATE OR REPLACE TABLE ... AS SELECT"),
        ("REFRESH MATERIALIZED VIEW mv", "Declarative Pipelines"),
        ("APPLY CHANGES INTO t FROM stream(s) KEYS (id) SEQUENCE BY ts", "MERGE INTO"),
        (
            "CREATE FUNCTION f(x INT) RETURNS INT LANGUAGE PYTHON AS $$ return x $$",
            "spark.udf.register",
        ),
        ("LIST '/Volumes/a/b/v'", "dbutils.fs.ls"),
        ("CREATE CONNECTION pg TYPE postgresql OPTIONS (host 'h')", "spark.read.jdbc"),
        ("CREATE SHARE s", "Delta Sharing"),
    ],
)
def test_databricks_only_statements_name_the_local_alternative(
    statement: str, expected: str
) -> None:
    error = unity._unavailable(statement, _SparkError("PARSE_SYNTAX_ERROR"))

    assert isinstance(error, DatabricksOnlySyntax)
    assert isinstance(error, MeshopsError)
    assert expected in str(error)
    assert "\n" not in str(error)


@pytest.mark.unit
def test_other_errors_are_not_translated() -> None:
    assert unity._unavailable("SELEC 1", _SparkError("PARSE_SYNTAX_ERROR")) is None
    assert (
        unity._unavailable("COPY INTO t FROM '/x'", _SparkError("TABLE_OR_VIEW_NOT_FOUND")) is None
    )


@pytest.mark.unit
def test_install_leaves_remote_sessions_alone(tmp_path: Path) -> None:
    class _ConnectSession:
        """No _jsparkSession: what mode() calls a Spark Connect session."""

    before = unity._installed
    unity.install(_ConnectSession(), StatePaths(tmp_path))  # type: ignore[arg-type]

    assert unity._installed is before
    assert unity._active(_ConnectSession()) is None


# ---- on the local session ------------------------------------------------------------------


@pytest.fixture(scope="module")
def state(spark: SparkSession) -> StatePaths:
    options = session.active_options()
    assert options is not None
    return StatePaths(options.state.root.resolve())


@pytest.fixture(scope="module")
def uc(spark: SparkSession, state: StatePaths) -> SparkSession:
    unity.install(spark, state)
    unity.install(spark, state)  # idempotent: one wrapper, not two
    assert getattr(SparkSession.sql, "__meshops_unity__", False)
    assert not getattr(SparkSession.sql.__wrapped__, "__meshops_unity__", False)  # type: ignore[attr-defined]
    return spark


@pytest.fixture
def catalog(uc: SparkSession, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new catalog named after the test; dropped afterwards, current catalog restored."""
    name = "uc_" + request.node.name.removeprefix("test_")[:30].replace("[", "_").rstrip("]")
    uc.sql(f"DROP CATALOG IF EXISTS {name} CASCADE")
    yield name
    uc.catalog.setCurrentCatalog("spark_catalog")
    uc.sql(f"DROP CATALOG IF EXISTS {name} CASCADE")


def values(rows: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in rows.collect()]


@pytest.mark.spark
def test_create_catalog_makes_default_schema_and_persists(
    uc: SparkSession, state: StatePaths, catalog: str
) -> None:
    uc.sql(f"CREATE CATALOG IF NOT EXISTS `{catalog}` MANAGED LOCATION 's3://b/p' COMMENT 'mine';")

    assert (state.warehouse / f"{catalog}__default.db").is_dir()
    # the next process's session registers catalogs from these folders
    assert catalog in session._catalogs_on_disk(state.warehouse)
    assert (catalog,) in values(uc.sql("SHOW CATALOGS"))
    assert values(uc.sql(f"SHOW CATALOGS LIKE '{catalog}|nothing*'")) == [(catalog,)]
    assert values(uc.sql(f"SHOW SCHEMAS IN {catalog}")) == [("default",)]
    with pytest.raises(UnityCatalogError, match=rf"\[CATALOG_ALREADY_EXISTS\].*'{catalog}'"):
        uc.sql(f"CREATE CATALOG {catalog}")
    uc.sql(f"create catalog if not exists {catalog}")  # no error


@pytest.mark.spark
def test_use_catalog_and_schema(uc: SparkSession, catalog: str) -> None:
    uc.sql(f"CREATE CATALOG {catalog}")
    uc.sql(f"CREATE SCHEMA {catalog}.sales")

    uc.sql(f"USE CATALOG {catalog}")
    assert values(uc.sql("SELECT current_catalog(), current_schema()")) == [(catalog, "default")]
    uc.sql("USE SCHEMA sales")
    assert values(uc.sql("SELECT current_catalog(), current_schema()")) == [(catalog, "sales")]
    uc.sql("CREATE TABLE t AS SELECT 1 AS id")  # lands in the current catalog and schema
    assert values(uc.table(f"{catalog}.sales.t")) == [(1,)]
    uc.sql("USE DATABASE default")
    assert values(uc.sql("SELECT current_schema()")) == [("default",)]
    uc.sql("USE CATALOG hive_metastore")
    assert values(uc.sql("SELECT current_catalog()")) == [("spark_catalog",)]
    uc.sql(f"USE SCHEMA `{catalog}`.sales")  # two parts: catalog and schema, as on Databricks
    assert values(uc.sql("SELECT current_catalog(), current_schema()")) == [(catalog, "sales")]
    with pytest.raises(UnityCatalogError, match=r"\[NO_SUCH_CATALOG_EXCEPTION\] Catalog 'nope_x'"):
        uc.sql("USE CATALOG nope_x")


@pytest.mark.spark
def test_drop_catalog_refuses_non_empty_without_cascade(
    uc: SparkSession, state: StatePaths, catalog: str
) -> None:
    uc.sql(f"CREATE CATALOG {catalog}")
    uc.sql(f"CREATE SCHEMA {catalog}.s1")

    with pytest.raises(UnityCatalogError, match=r"CASCADE"):
        uc.sql(f"DROP CATALOG {catalog}")
    uc.sql(f"USE CATALOG {catalog}")
    uc.sql(f"DROP CATALOG {catalog} CASCADE")

    assert not (state.warehouse / f"{catalog}__s1.db").exists()
    assert not (state.warehouse / f"{catalog}__default.db").exists()
    assert (catalog,) not in values(uc.sql("SHOW CATALOGS"))
    assert values(uc.sql("SELECT current_catalog()")) == [("spark_catalog",)]
    with pytest.raises(UnityCatalogError, match="NO_SUCH_CATALOG_EXCEPTION"):
        uc.sql(f"DROP CATALOG {catalog}")
    uc.sql(f"DROP CATALOG IF EXISTS {catalog}")
    # an empty catalog (only an empty default schema) drops without CASCADE
    uc.sql(f"CREATE CATALOG {catalog}")
    uc.sql(f"DROP CATALOG {catalog}")
    assert (catalog,) not in values(uc.sql("SHOW CATALOGS"))


@pytest.mark.spark
def test_volumes_are_folders_of_the_state_dir(
    uc: SparkSession, state: StatePaths, catalog: str
) -> None:
    uc.sql(f"CREATE CATALOG {catalog}")
    uc.sql(f"CREATE SCHEMA {catalog}.raw")

    uc.sql(f"CREATE VOLUME {catalog}.raw.landing COMMENT 'drop zone';")
    uc.sql(f"USE CATALOG {catalog}")
    uc.sql("CREATE VOLUME IF NOT EXISTS raw.`Files`")  # two parts: the current catalog
    uc.sql("USE SCHEMA raw")
    uc.sql("create volume if not exists landing")  # exists: no error

    volumes = state.volumes / catalog / "raw"
    assert sorted(p.name for p in volumes.iterdir()) == ["files", "landing"]
    uc.range(3).write.parquet(f"/Volumes/{catalog}/raw/landing/numbers")
    assert (volumes / "landing" / "numbers").is_dir()
    assert values(uc.sql(f"SHOW VOLUMES IN {catalog}.raw")) == [
        ("raw", "files"),
        ("raw", "landing"),
    ]
    assert uc.sql("SHOW VOLUMES").columns == ["database", "volumeName"]
    assert values(uc.sql("SHOW VOLUMES LIKE 'land*'")) == [("raw", "landing")]
    described = uc.sql(f"DESCRIBE VOLUME {catalog}.raw.landing").collect()
    assert [row.asDict() for row in described] == [
        {
            "name": "landing",
            "catalog": catalog,
            "database": "raw",
            "owner": described[0].owner,
            "storageLocation": (volumes / "landing").as_uri(),
            "volumeType": "MANAGED",
            "comment": "drop zone",
        }
    ]
    with pytest.raises(UnityCatalogError, match=r"\[VOLUME_ALREADY_EXISTS\]"):
        uc.sql(f"CREATE VOLUME {catalog}.raw.landing")

    uc.sql(f"DROP VOLUME {catalog}.raw.landing")
    assert not (volumes / "landing").exists()
    assert values(uc.sql(f"SHOW VOLUMES IN {catalog}.raw")) == [("raw", "files")]
    uc.sql(f"DROP VOLUME IF EXISTS {catalog}.raw.landing")
    with pytest.raises(UnityCatalogError, match=r"\[VOLUME_NOT_FOUND\]"):
        uc.sql(f"DROP VOLUME {catalog}.raw.landing")


@pytest.mark.spark
def test_volume_needs_its_schema(uc: SparkSession, state: StatePaths, catalog: str) -> None:
    uc.sql(f"CREATE CATALOG {catalog}")

    with pytest.raises(UnityCatalogError, match=rf"\[SCHEMA_NOT_FOUND\].*`{catalog}`.`nope`"):
        uc.sql(f"CREATE VOLUME {catalog}.nope.v")
    with pytest.raises(UnityCatalogError, match=r"SCHEMA_NOT_FOUND.*`unknown_cat`.`s`"):
        uc.sql("CREATE VOLUME unknown_cat.s.v")
    with pytest.raises(UnityCatalogError, match="spark_catalog"):
        uc.sql("CREATE VOLUME v")  # current catalog spark_catalog: no volumes there
    assert not (state.volumes / catalog / "nope").exists()


@pytest.mark.spark
def test_external_volume_is_a_local_folder(
    uc: SparkSession, state: StatePaths, catalog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    uc.sql(f"CREATE CATALOG {catalog}")

    uc.sql(f"CREATE EXTERNAL VOLUME {catalog}.default.ext LOCATION 's3://bucket/landing'")

    assert (state.volumes / catalog / "default" / "ext").is_dir()
    assert "s3://bucket/landing is recorded, not read" in capsys.readouterr().err
    row = uc.sql(f"DESCRIBE VOLUME {catalog}.default.ext").first()
    assert row is not None
    assert (row.volumeType, row.storageLocation) == ("EXTERNAL", "s3://bucket/landing")
    with pytest.raises(UnityCatalogError, match="LOCATION"):
        uc.sql(f"CREATE EXTERNAL VOLUME {catalog}.default.ext2")


@pytest.mark.spark
def test_grants_are_recorded_not_enforced(
    uc: SparkSession,
    state: StatePaths,
    catalog: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(unity, "_grant_note_shown", False)
    uc.sql(f"CREATE CATALOG {catalog}")
    uc.sql(f"CREATE SCHEMA {catalog}.s")
    uc.sql(f"CREATE TABLE {catalog}.s.t AS SELECT 1 AS id")
    uc.sql(f"CREATE VOLUME {catalog}.s.v")

    uc.sql(f"GRANT USE CATALOG ON CATALOG {catalog} TO `data engineers`")
    uc.sql(f"GRANT SELECT, modify ON TABLE {catalog}.s.t TO `jane@acme.example`;")
    uc.sql(f"USE CATALOG {catalog}")
    uc.sql("GRANT READ VOLUME ON VOLUME s.v TO `jane@acme.example`")
    uc.sql("REVOKE MODIFY ON TABLE s.t FROM `jane@acme.example`")
    uc.sql("ALTER VOLUME s.v OWNER TO `ops@acme.example`")

    err = capsys.readouterr().err
    assert err.count("recorded locally") == 1
    assert "not enforced" in err
    assert values(uc.sql(f"SHOW GRANTS ON TABLE {catalog}.s.t")) == [
        ("jane@acme.example", "SELECT", "TABLE", f"{catalog}.s.t"),
        ("data engineers", "USE CATALOG", "CATALOG", catalog),  # inherited from the catalog
    ]
    assert values(uc.sql("SHOW GRANTS `JANE@acme.example` ON VOLUME s.v")) == [
        ("jane@acme.example", "READ VOLUME", "VOLUME", f"{catalog}.s.v")
    ]
    shown = uc.sql(f"SHOW GRANT ON CATALOG {catalog}")
    assert shown.columns == ["principal", "actionType", "objectType", "objectKey"]
    assert values(shown) == [("data engineers", "USE CATALOG", "CATALOG", catalog)]
    row = uc.sql("DESCRIBE VOLUME s.v").first()
    assert row is not None and row.owner == "ops@acme.example"
    assert unity.record_path(state).is_file()
    assert values(uc.table(f"{catalog}.s.t")) == [(1,)]  # nothing enforced


@pytest.mark.spark
def test_databricks_settings_warn_once_instead_of_failing(uc: SparkSession) -> None:
    key = "spark.databricks.meshops_test.warn_once"  # no other test sets it
    with pytest.warns(DatabricksOnlyConfig, match=rf"{key}.*no effect on local Spark"):
        uc.conf.set(key, "true")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uc.conf.set(key, "false")  # same key: no second warning
    assert uc.conf.get(key) == "false"

    with pytest.warns(DatabricksOnlyConfig, match="spark.executor.memory"):
        uc.conf.set("spark.executor.memory", "8g")  # OSS: CANNOT_MODIFY_CONFIG
    with pytest.raises(AnalysisException, match="CANNOT_MODIFY_STATIC_CONFIG"):
        uc.conf.set("spark.sql.warehouse.dir", "/elsewhere")  # fixed on Databricks too
    uc.conf.set("spark.sql.shuffle.partitions", "4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Delta's own settings keep the prefix and do work
        uc.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")


@pytest.mark.spark
def test_databricks_only_syntax_raises_a_meshops_error(uc: SparkSession) -> None:
    with pytest.raises(DatabricksOnlySyntax, match=r"COPY INTO .*spark\.read"):
        uc.sql("COPY INTO a.b.c FROM '/Volumes/a/b/v' FILEFORMAT = CSV")
    with pytest.raises(DatabricksOnlySyntax, match="streaming table"):
        uc.sql("CREATE OR REFRESH STREAMING TABLE t AS SELECT 1")
    with pytest.raises(DatabricksOnlySyntax, match="materialized view"):
        uc.sql("CREATE MATERIALIZED VIEW mv AS SELECT 1")  # OSS: UNSUPPORTED_FEATURE, not parse
    with pytest.raises(DatabricksOnlySyntax, match=r"dbutils\.fs\.ls"):
        uc.sql("LIST '/Volumes/a/b/v'")
    with pytest.raises(ParseException, match="PARSE_SYNTAX_ERROR"):
        uc.sql("SELEC 1")  # not Databricks syntax: Spark's error unchanged


@pytest.mark.spark
def test_other_statements_pass_through(uc: SparkSession) -> None:
    assert values(uc.sql("SELECT 1 AS x")) == [(1,)]
    df = uc.range(2)
    assert values(uc.sql("SELECT count(*) FROM {df}", df=df)) == [(2,)]
    # Spark's own analysis error, untouched
    with pytest.raises(AnalysisException, match="REQUIRES_SINGLE_PART_NAMESPACE"):
        uc.sql("SELECT * FROM uc_nowhere.s.t")


@pytest.mark.spark
def test_java_cause_of_a_real_py4j_error(uc: SparkSession) -> None:
    with pytest.raises(Py4JJavaError) as failed:
        uc.read.format("nope_format").load("/tmp/nothing")
    assert unity.java_cause(failed.value).startswith(
        "SparkClassNotFoundException: [DATA_SOURCE_NOT_FOUND] Failed to find the data source: "
        "nope_format."
    )
    with pytest.raises(Py4JJavaError) as missing:
        uc.sparkContext._jvm.java.lang.Class.forName("nope.Nope")  # type: ignore[union-attr]
    assert unity.java_cause(missing.value) == "ClassNotFoundException: nope.Nope"
