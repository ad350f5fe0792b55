"""Pipeline SQL text before Spark sees it: tokens, statements, configuration variables."""

from __future__ import annotations

import pytest

from meshops.pipelines.errors import PipelineSourceError
from meshops.pipelines.sqlsource import statements, substitute, tokenize

pytestmark = pytest.mark.unit


def test_statements_split_at_semicolons_outside_strings_and_comments() -> None:
    text = (
        "-- Databricks notebook source\n"
        "CREATE MATERIALIZED VIEW a AS SELECT ';' AS x; -- a; comment\n"
        "/* block; comment */\n"
        "-- COMMAND ----------\n"
        'CREATE VIEW `b;c` AS SELECT "d;e" AS y\n'
        ";;\n"
        "-- only a comment;\n"
    )
    found = [
        [t.text for t in statement if t.kind not in ("space", "comment")]
        for statement in statements(tokenize(text))
    ]
    assert found == [
        ["CREATE", "MATERIALIZED", "VIEW", "a", "AS", "SELECT", "';'", "AS", "x"],
        ["CREATE", "VIEW", "`b;c`", "AS", "SELECT", '"d;e"', "AS", "y"],
    ]
    second = next(t for t in tokenize(text) if t.text == "`b;c`")
    assert (second.line, second.name) == (5, "b;c")


def test_an_unterminated_quote_is_named_by_line() -> None:
    with pytest.raises(PipelineSourceError, match=r"^trips.sql:3: unterminated quote"):
        tokenize("SELECT 1;\n\nSELECT 'oops", "trips.sql")


def test_configuration_variables_are_replaced_and_others_left_for_spark() -> None:
    text = "SELECT * FROM t WHERE d >= '${start}' AND x = ${spark.sql.x}"
    assert substitute(text, {"start": "2024-01-01"}) == (
        "SELECT * FROM t WHERE d >= '2024-01-01' AND x = ${spark.sql.x}"
    )
