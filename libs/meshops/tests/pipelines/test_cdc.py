"""AUTO CDC flows through the pipeline: `dlt.apply_changes` (SCD type 2, from a streaming
view) and SQL `AUTO CDC INTO` (SCD type 1), over two updates, against hand-computed tables."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark

CHANGES = "id INT, name STRING, city STRING, op STRING, seq INT"

HISTORY = """
import dlt

dlt.create_streaming_table("customers_history")

dlt.apply_changes(
    target="customers_history",
    source="changes",
    keys=["id"],
    sequence_by="seq",
    apply_as_deletes="op = 'DELETE'",
    except_column_list=["op", "seq"],
    stored_as_scd_type=2,
)


@dlt.view
def changes():
    return spark.readStream.table("changes_raw")
"""

CURRENT = """
CREATE OR REFRESH STREAMING TABLE customers;

CREATE FLOW customers_cdc AS AUTO CDC INTO customers
FROM STREAM(changes_raw)
KEYS (id)
APPLY AS DELETE WHEN op = 'DELETE'
SEQUENCE BY seq
COLUMNS * EXCEPT (op, seq)
STORED AS SCD TYPE 1;
"""


def test_scd1_and_scd2_targets_follow_the_change_feed(bed) -> None:
    bed.write(
        "changes_raw",
        [
            (1, "ann", "paris", "UPSERT", 1),
            (2, "bob", "rome", "UPSERT", 1),
            (1, "ann", "oslo", "UPSERT", 2),
        ],
        CHANGES,
    )
    sources = (bed.source("history.py", HISTORY), bed.source("current.sql", CURRENT))
    bed.run(*sources)
    assert bed.rows("customers") == [(1, "ann", "oslo"), (2, "bob", "rome")]
    assert bed.rows("customers_history") == [
        (1, "ann", "oslo", 2, None),
        (1, "ann", "paris", 1, 2),
        (2, "bob", "rome", 1, None),
    ]

    bed.write(
        "changes_raw",
        [(2, "bob", None, "DELETE", 3), (3, "cy", "nice", "UPSERT", 3)],
        CHANGES,
    )
    second = bed.run(*sources)
    assert bed.rows("customers") == [(1, "ann", "oslo"), (3, "cy", "nice")]
    assert bed.rows("customers_history", "id", "city", "__START_AT", "__END_AT") == [
        (1, "oslo", 2, None),
        (1, "paris", 1, 2),
        (2, "rome", 1, 3),
        (3, "nice", 3, None),
    ]
    assert {f.name: f.mode for f in second.flows} == {
        "customers_history": "cdc",
        "changes": "view",
        "customers_cdc": "cdc",
    }
