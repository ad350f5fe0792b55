"""Pipeline SQL: the statements of a `.sql` source (or a `%sql` cell) as graph elements.

Spark 4.1+ parses part of this grammar itself (`CREATE MATERIALIZED VIEW`, `CREATE STREAMING
TABLE`, `CREATE FLOW ... INSERT INTO ... BY NAME`, `STREAM(x)`), but not Databricks' clauses
that pipelines are written with (`OR REFRESH`, `CONSTRAINT ... EXPECT`, `AUTO CDC INTO`,
`APPLY CHANGES INTO`, `LIVE`). So the statement heads below are read by this small
recursive-descent parser over a tokenizer that knows SQL strings, quoted names and comments,
and everything with SQL inside is handed to Spark's own parser (`sessionState.sqlParser`):
queries (`parsePlan`, which also tells which tables a query reads), expressions
(`parseExpression`) and column lists (`parseTableSchema`).

Supported (keywords case-insensitive; `[...]` optional, `|` alternatives):

    CREATE [OR REFRESH] [PRIVATE] {MATERIALIZED VIEW | STREAMING TABLE | [STREAMING] LIVE TABLE}
        [IF NOT EXISTS] name
        [( {column_definition | CONSTRAINT c EXPECT (condition)
             [ON VIOLATION {DROP ROW | FAIL UPDATE}]} [, ...] )]
        [COMMENT 'text'] [TBLPROPERTIES (key = value, ...)] [PARTITIONED BY (col, ...)]
        [CLUSTER BY (col, ...)] [USING DELTA]
        [AS query]                      -- a streaming table without AS is for flows
    CREATE [OR REPLACE] [TEMPORARY] [LIVE] VIEW name [( CONSTRAINT ... )] [COMMENT 'text'] AS query
    CREATE FLOW name [COMMENT 'text'] AS INSERT INTO target BY NAME query
    [CREATE FLOW name AS] {AUTO CDC | APPLY CHANGES} INTO target
        FROM {STREAM(source) | STREAM source | source}
        KEYS (col, ...) [IGNORE NULL UPDATES]
        [APPLY AS DELETE WHEN condition] [APPLY AS TRUNCATE WHEN condition]
        SEQUENCE BY expression
        [COLUMNS {col, ... | * EXCEPT (col, ...)}]
        [STORED AS SCD TYPE {1 | 2}]
        [TRACK HISTORY ON {col, ... | * EXCEPT (col, ...)}]
    SET key = value                     -- a setting for the flows declared after it

In queries, `LIVE.x` is `x` of this pipeline, `STREAM(x)` / `STREAM x` a streaming read (Spark
resolves those), and `[STREAM] read_files('path', format => 'csv', ...)` a file source
(Auto Loader when streaming). `${key}` is replaced by the pipeline configuration's value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from meshops.pipelines.errors import PipelineSourceError
from meshops.pipelines.graph import Action, CdcArgs, Dataset, DatasetKind, Expectation, FlowDef

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from meshops.pipelines.registry import LocalRegistry

TokenKind = Literal["word", "quoted", "string", "number", "punct", "space", "comment"]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[A-Za-z]*|\.\d+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>=>|::|<=>|<>|!=|>=|<=|\|\||\S)
    """,
    re.VERBOSE | re.DOTALL,
)
_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    start: int
    line: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def name(self) -> str:
        """The identifier this token spells (backticks removed)."""
        return self.text[1:-1].replace("``", "`") if self.kind == "quoted" else self.text


def tokenize(text: str, where: str = "<sql>", first_line: int = 1) -> list[Token]:
    """Every token of `text`, whitespace and comments included (so text can be rebuilt)."""
    tokens: list[Token] = []
    pos, line = 0, first_line
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None or (found.lastgroup == "punct" and found.group() in "'\"`"):
            raise PipelineSourceError(f"{where}:{line}: unterminated quote starting here")
        kind: Any = found.lastgroup
        if kind == "punct" and text.startswith("/*", pos):
            raise PipelineSourceError(f"{where}:{line}: unterminated /* comment")
        tokens.append(Token(kind, found.group(), pos, line))
        line += found.group().count("\n")
        pos = found.end()
    return tokens


def statements(tokens: list[Token]) -> Iterator[list[Token]]:
    """Statements split at top-level `;`; only those with something besides comments."""
    current: list[Token] = []
    for token in tokens:
        if token.kind == "punct" and token.text == ";":
            if any(t.kind not in ("space", "comment") for t in current):
                yield current
            current = []
        else:
            current.append(token)
    if any(t.kind not in ("space", "comment") for t in current):
        yield current


def substitute(text: str, configuration: dict[str, str]) -> str:
    """`${key}` replaced by the configuration's value (others left for Spark's conf)."""
    return _VARIABLE.sub(lambda m: configuration.get(m.group(1).strip(), m.group(0)), text)


def register(registry: LocalRegistry, text: str, path: Path | str, first_line: int = 1) -> None:
    """Declare every statement of `text` (from `path`) in the registry's graph."""
    where = str(path)
    source = substitute(text, registry.configuration)
    settings: dict[str, str] = {}
    for statement in statements(tokenize(source, where, first_line)):
        _Statement(registry, statement, where, settings, source).declare()


# ---- one statement -------------------------------------------------------------------------

_CDC_CLAUSES = frozenset({"KEYS", "IGNORE", "APPLY", "SEQUENCE", "COLUMNS", "STORED", "TRACK"})


@dataclass
class _Statement:
    registry: LocalRegistry
    all_tokens: list[Token]
    path: str
    settings: dict[str, str]
    source: str
    """The whole text the tokens come from (their offsets point into it)."""
    tokens: list[Token] = field(init=False)
    pos: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.tokens = [t for t in self.all_tokens if t.kind not in ("space", "comment")]

    # -- cursor

    @property
    def where(self) -> str:
        return f"{self.path}:{self.tokens[0].line}"

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at(self, *words: str) -> bool:
        """The next tokens are these keywords."""
        for offset, word in enumerate(words):
            token = self.peek(offset)
            if token is None or token.upper != word:
                return False
        return True

    def accept(self, *words: str) -> bool:
        if self.at(*words):
            self.pos += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            self.fail(f"expected {' '.join(words)}")

    def fail(self, expected: str) -> None:
        token = self.peek()
        found = f"'{token.text}'" if token is not None else "the end of the statement"
        line = token.line if token is not None else self.tokens[-1].line
        raise PipelineSourceError(f"{self.path}:{line}: {expected}, found {found}")

    def punct(self, text: str) -> None:
        token = self.peek()
        if token is None or token.kind != "punct" or token.text != text:
            self.fail(f"expected '{text}'")
        self.pos += 1

    def name(self) -> str:
        parts = [self.identifier()]
        while (t := self.peek()) is not None and t.kind == "punct" and t.text == ".":
            self.pos += 1
            parts.append(self.identifier())
        return ".".join(_quote_if_needed(p) for p in parts)

    def identifier(self) -> str:
        token = self.peek()
        if token is None or token.kind not in ("word", "quoted"):
            self.fail("expected a name")
            raise AssertionError  # unreachable: fail raises
        self.pos += 1
        return token.name

    def group(self) -> list[Token]:
        """The tokens inside the parentheses that start here (nesting kept)."""
        self.punct("(")
        depth, start = 1, self.pos
        while (token := self.peek()) is not None:
            if token.kind == "punct" and token.text == "(":
                depth += 1
            elif token.kind == "punct" and token.text == ")":
                depth -= 1
                if depth == 0:
                    self.pos += 1
                    return self.tokens[start : self.pos - 1]
            self.pos += 1
        self.fail("expected ')'")
        raise AssertionError

    def text_of(self, tokens: list[Token]) -> str:
        """The source text the tokens span (comments inside kept)."""
        if not tokens:
            return ""
        return self.source[tokens[0].start : tokens[-1].start + len(tokens[-1].text)]

    def rest(self) -> list[Token]:
        rest, self.pos = self.tokens[self.pos :], len(self.tokens)
        return rest

    def string(self) -> str:
        token = self.peek()
        if token is None or token.kind != "string":
            self.fail("expected a 'quoted string'")
            raise AssertionError
        self.pos += 1
        return _unquote(token.text)

    # -- statements

    def declare(self) -> None:
        if self.accept("SET"):
            self.set_conf()
        elif self.at("CREATE", "FLOW"):
            self.pos += 2
            self.flow()
        elif self.at("AUTO", "CDC") or self.at("APPLY", "CHANGES"):
            self.cdc(None)
        elif self.accept("CREATE"):
            self.create()
        else:
            self.fail(
                "expected CREATE [OR REFRESH] MATERIALIZED VIEW / STREAMING TABLE / "
                "[TEMPORARY] VIEW, CREATE FLOW, AUTO CDC INTO or SET"
            )

    def set_conf(self) -> None:
        text = self.text_of(self.rest())
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise PipelineSourceError(f"{self.where}: expected SET key = value, found {text!r}")
        self.settings[key.strip()] = _unquote(value.strip())

    def create(self) -> None:
        # CREATE OR REFRESH / OR REPLACE: both (re)define the dataset, as CREATE does here
        _ = self.accept("OR", "REFRESH") or self.accept("OR", "REPLACE")
        private = self.accept("PRIVATE")
        temporary = self.accept("TEMPORARY") or self.accept("TEMP")
        kind: DatasetKind
        if self.accept("MATERIALIZED", "VIEW"):
            kind = "materialized_view"
        elif (
            self.accept("STREAMING", "TABLE")
            or self.accept("STREAMING", "LIVE", "TABLE")
            or self.accept("INCREMENTAL", "LIVE", "TABLE")
        ):
            kind = "streaming_table"
        elif self.accept("LIVE", "TABLE"):
            kind = "materialized_view"
        elif self.accept("LIVE", "VIEW") or self.accept("VIEW"):
            kind = "view"
        else:
            self.fail(
                "expected MATERIALIZED VIEW, STREAMING TABLE or VIEW (a pipeline's SQL declares "
                "datasets; plain CREATE TABLE is not one)"
            )
        if temporary and kind != "view":
            self.fail("TEMPORARY goes with VIEW")
        self.accept("IF", "NOT", "EXISTS")
        dataset = Dataset(name=self.name(), kind=kind, where=self.where, private=private)
        columns: list[str] = []
        if (t := self.peek()) is not None and t.kind == "punct" and t.text == "(":
            columns = self.columns(dataset)
        if columns:
            if kind == "view":
                raise PipelineSourceError(
                    f"{self.where}: view '{dataset.name}' takes constraints only in its "
                    "parentheses; its columns come from its query"
                )
            dataset.schema = self.schema(columns)
        self.clauses(dataset)
        query = self.text_of(self.rest()) if self.accept("AS") else ""
        if self.peek() is not None:
            self.fail("expected AS query")
        if not query and kind != "streaming_table":
            raise PipelineSourceError(
                f"{self.where}: {kind.replace('_', ' ')} '{dataset.name}' needs AS <query>"
            )
        self.registry.graph.add_dataset(dataset)
        if query:
            self.check_query(query)
            self.registry.add_flow(
                FlowDef(
                    name=dataset.name,
                    target=dataset.name,
                    where=self.where,
                    query=_sql_query(self.registry.spark, query),
                    spark_conf=dict(self.settings),
                )
            )
        elif self.settings:
            dataset.spark_conf = dict(self.settings)

    def columns(self, dataset: Dataset) -> list[str]:
        """Column definitions of the parenthesised list; constraints become expectations."""
        inside = self.group()
        columns: list[str] = []
        for item in _split_commas(inside):
            if item and item[0].upper == "CONSTRAINT":
                dataset.expectations.append(self.constraint(item))
            elif item:
                columns.append(self.text_of(item))
        return columns

    def constraint(self, item: list[Token]) -> Expectation:
        sub = _Statement(self.registry, item, self.path, self.settings, self.source)
        sub.expect("CONSTRAINT")
        name = sub.identifier()
        if not sub.accept("EXPECT"):
            sub.fail(
                f"constraint {name}: expected EXPECT (condition) (other table constraints do "
                "not apply to pipeline datasets)"
            )
        condition = sub.text_of(sub.group()).strip()
        action: Action = "warn"
        if sub.accept("ON", "VIOLATION"):
            if sub.accept("DROP", "ROW"):
                action = "drop"
            elif sub.accept("FAIL", "UPDATE"):
                action = "fail"
            else:
                sub.fail("expected DROP ROW or FAIL UPDATE after ON VIOLATION")
        if sub.peek() is not None:
            sub.fail(f"constraint {name}: expected ON VIOLATION or the end of the constraint")
        expectation = Expectation(name, condition, action, f"{self.path}:{item[0].line}")
        from meshops.pipelines.registry import check_condition

        check_condition(self.registry.spark, expectation)
        return expectation

    def schema(self, columns: list[str]) -> Any:
        return parse_schema(self.registry.spark, ", ".join(columns), self.where)

    def clauses(self, dataset: Dataset) -> None:
        while (token := self.peek()) is not None and token.upper != "AS":
            if self.accept("COMMENT"):
                dataset.comment = self.string()
            elif self.accept("TBLPROPERTIES"):
                dataset.table_properties.update(self.properties())
            elif self.accept("PARTITIONED", "BY"):
                dataset.partition_cols = tuple(self.names())
            elif self.accept("CLUSTER", "BY"):
                if self.accept("AUTO"):
                    continue  # Databricks picks the keys; locally the table is not clustered
                dataset.cluster_by = tuple(self.names())
            elif self.accept("USING"):
                if self.identifier().lower() != "delta":
                    self.pos -= 1
                    self.fail("expected USING DELTA (pipeline tables are Delta tables)")
            elif token.upper in ("LOCATION", "SCHEDULE", "TRIGGER", "WITH", "OPTIONS"):
                self.fail(
                    f"{token.text.upper()} is not supported locally; expected COMMENT, "
                    "TBLPROPERTIES, PARTITIONED BY, CLUSTER BY or AS"
                )
            else:
                self.fail("expected COMMENT, TBLPROPERTIES, PARTITIONED BY, CLUSTER BY or AS")
        if dataset.partition_cols and dataset.cluster_by:
            raise PipelineSourceError(
                f"{self.where}: '{dataset.name}' has PARTITIONED BY and CLUSTER BY; Delta takes "
                "one of them"
            )

    def properties(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for item in _split_commas(self.group()):
            sub = _Statement(self.registry, item, self.path, self.settings, self.source)
            key = sub.string() if item[0].kind == "string" else sub.name()
            if (t := sub.peek()) is not None and t.kind == "punct" and t.text == "=":
                sub.pos += 1
            value = sub.peek()
            if value is None or sub.peek(1) is not None:
                sub.fail(f"TBLPROPERTIES {key}: expected one value ('text', a number or true)")
                raise AssertionError
            found[key] = _unquote(value.text) if value.kind == "string" else value.text
        return found

    def names(self) -> list[str]:
        """`(a, b)`, or a bare `a, b` list up to the next clause."""
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "(":
            items = _split_commas(self.group())
        else:
            items = []
            while True:
                token = self.peek()
                self.identifier()
                items.append([token] if token is not None else [])
                if (t := self.peek()) is not None and t.kind == "punct" and t.text == ",":
                    self.pos += 1
                    continue
                break
        names = []
        for item in items:
            if len(item) != 1 or item[0].kind not in ("word", "quoted"):
                raise PipelineSourceError(
                    f"{self.path}:{item[0].line if item else self.tokens[0].line}: expected a "
                    f"column name, found {self.text_of(item)!r}"
                )
            names.append(item[0].name)
        return names

    def flow(self) -> None:
        name = self.name()
        comment_given = self.accept("COMMENT")
        if comment_given:
            self.string()
        self.expect("AS")
        if self.at("AUTO", "CDC") or self.at("APPLY", "CHANGES"):
            self.cdc(name)
            return
        self.expect("INSERT", "INTO")
        once = self.accept("ONCE")
        target = self.name()
        self.expect("BY", "NAME")
        query = self.text_of(self.rest())
        if not query.strip():
            self.fail("expected the query after BY NAME")
        self.check_query(query)
        self.registry.add_flow(
            FlowDef(
                name=name,
                target=_dataset_name(target),
                where=self.where,
                query=_sql_query(self.registry.spark, query),
                spark_conf=dict(self.settings),
                once=once,
            )
        )

    def cdc(self, flow_name: str | None) -> None:
        if not (self.accept("AUTO", "CDC") or self.accept("APPLY", "CHANGES")):
            self.fail("expected AUTO CDC INTO")
        self.expect("INTO")
        target = _dataset_name(self.name())
        self.expect("FROM")
        source = self.cdc_source()
        self.expect("KEYS")
        keys = tuple(self.names())
        ignore_nulls = deletes = truncates = sequence = None
        columns: tuple[str, ...] | None = None
        except_columns: tuple[str, ...] | None = None
        scd = 1
        track: tuple[str, ...] | None = None
        track_except: tuple[str, ...] | None = None
        while self.peek() is not None:
            if self.accept("IGNORE", "NULL", "UPDATES"):
                ignore_nulls = True
            elif self.accept("APPLY", "AS", "DELETE", "WHEN"):
                deletes = self.expression("APPLY AS DELETE WHEN")
            elif self.accept("APPLY", "AS", "TRUNCATE", "WHEN"):
                truncates = self.expression("APPLY AS TRUNCATE WHEN")
            elif self.accept("SEQUENCE", "BY"):
                sequence = self.expression("SEQUENCE BY")
            elif self.accept("COLUMNS"):
                columns, except_columns = self.column_choice()
            elif self.accept("STORED", "AS", "SCD", "TYPE"):
                token = self.peek()
                if token is None or token.text not in ("1", "2"):
                    self.fail("expected STORED AS SCD TYPE 1 or 2")
                    raise AssertionError
                scd = int(token.text)
                self.pos += 1
            elif self.accept("TRACK", "HISTORY", "ON"):
                track, track_except = self.column_choice()
            else:
                self.fail(
                    "expected IGNORE NULL UPDATES, APPLY AS DELETE WHEN, APPLY AS TRUNCATE WHEN, "
                    "SEQUENCE BY, COLUMNS, STORED AS SCD TYPE or TRACK HISTORY ON"
                )
        if sequence is None:
            raise PipelineSourceError(f"{self.where}: AUTO CDC INTO {target} needs SEQUENCE BY")
        self.registry.add_flow(
            FlowDef(
                name=flow_name or target,
                target=target,
                where=self.where,
                query=None,
                spark_conf=dict(self.settings),
                cdc=CdcArgs(
                    source=source,
                    keys=keys,
                    sequence_by=sequence,
                    ignore_null_updates=bool(ignore_nulls),
                    apply_as_deletes=deletes,
                    apply_as_truncates=truncates,
                    column_list=columns,
                    except_column_list=except_columns,
                    stored_as_scd_type=scd,
                    track_history_column_list=track,
                    track_history_except_column_list=track_except,
                ),
            )
        )

    def cdc_source(self) -> str:
        if self.accept("STREAM"):
            token = self.peek()
            if token is not None and token.kind == "punct" and token.text == "(":
                inside = _Statement(
                    self.registry, self.group(), self.path, self.settings, self.source
                )
                name = inside.name()
                if inside.peek() is not None:
                    inside.fail("expected STREAM(<table name>)")
                return _dataset_name(name)
        return _dataset_name(self.name())

    def column_choice(self) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        """`* EXCEPT (a, b)` -> (None, (a, b)); `a, b` or `(a, b)` -> ((a, b), None)."""
        token = self.peek()
        if token is not None and token.kind == "punct" and token.text == "*":
            self.pos += 1
            self.expect("EXCEPT")
            return None, tuple(self.names())
        return tuple(self.names()), None

    def expression(self, clause: str) -> str:
        start, depth = self.pos, 0
        while (token := self.peek()) is not None:
            if token.kind == "punct" and token.text == "(":
                depth += 1
            elif token.kind == "punct" and token.text == ")":
                depth -= 1
            elif depth == 0 and token.upper in _CDC_CLAUSES and self.pos > start:
                break
            self.pos += 1
        text = self.text_of(self.tokens[start : self.pos]).strip()
        if not text:
            self.fail(f"expected an expression after {clause}")
        try:
            _parser(self.registry.spark).parseExpression(text)
        except Exception as exc:
            raise PipelineSourceError(
                f"{self.where}: {clause} {text!r} is not a SQL expression: {_reason(exc)}"
            ) from None
        return text

    def check_query(self, query: str) -> None:
        try:
            _parser(self.registry.spark).parsePlan(query)
        except Exception as exc:
            raise PipelineSourceError(
                f"{self.where}: the query does not parse: {_reason(exc)}"
            ) from None


# ---- helpers -------------------------------------------------------------------------------


def _sql_query(spark: SparkSession, query: str) -> Any:
    """The flow's query function: the SQL run by the pipeline's session when the flow runs
    (its reads resolved by `reads`, which makes `spark.sql` pipeline-aware)."""

    def query_function() -> DataFrame:
        return spark.sql(query)

    query_function.__qualname__ = query_function.__name__ = "sql_query"
    return query_function


def parse_schema(spark: SparkSession, ddl: str, where: str) -> StructType:
    """Column definitions (`id BIGINT NOT NULL COMMENT 'x', ...`) as a StructType."""
    from pyspark.sql.types import StructType

    try:
        return StructType.fromJson(json.loads(_parser(spark).parseTableSchema(ddl).json()))
    except Exception as exc:
        raise PipelineSourceError(
            f"{where}: {ddl!r} is not a list of column definitions such as "
            f"`id BIGINT NOT NULL COMMENT 'x'`: {_reason(exc)}"
        ) from None


def _parser(spark: SparkSession) -> Any:
    return spark._jsparkSession.sessionState().sqlParser()


def _split_commas(tokens: list[Token]) -> list[list[Token]]:
    items: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "punct" and token.text in "([":
            depth += 1
        elif token.kind == "punct" and token.text in ")]":
            depth -= 1
        if depth == 0 and token.kind == "punct" and token.text == ",":
            items.append([])
        else:
            items[-1].append(token)
    return [item for item in items if item]


def _dataset_name(name: str) -> str:
    """`LIVE.x` names dataset `x` of this pipeline."""
    head, sep, tail = name.partition(".")
    return tail if sep and head.lower() == "live" else name


def _quote_if_needed(part: str) -> str:
    return part if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part) else f"`{part.replace('`', '``')}`"


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        quote = text[0]
        body = text[1:-1].replace(quote * 2, quote)
        return re.sub(r"\\(.)", r"\1", body)
    return text


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def table_references(spark: SparkSession, query: str) -> list[tuple[list[str], bool]]:
    """(name parts, streaming) of every table a query reads, CTE names left out; [] when
    Spark cannot parse it (Spark then reports why when it runs)."""
    try:
        plan = _parser(spark).parsePlan(query)
    except Exception:
        return []
    found: list[tuple[list[str], bool]] = []
    ctes: set[str] = set()
    _walk(plan, found, ctes)
    return [
        (parts, streaming)
        for parts, streaming in found
        if not (len(parts) == 1 and parts[0].lower() in ctes)
    ]


def _seq(value: Any) -> list[Any]:
    return [value.apply(i) for i in range(value.size())]


def _walk(node: Any, found: list[tuple[list[str], bool]], ctes: set[str]) -> None:
    kind = node.getClass().getSimpleName()
    if kind == "UnresolvedRelation":
        found.append(([str(p) for p in _seq(node.multipartIdentifier())], bool(node.isStreaming())))
    elif kind == "UnresolvedWith":
        ctes.update(str(pair._1()).lower() for pair in _seq(node.cteRelations()))
    for child in _seq(node.children()):
        _walk(child, found, ctes)
    for child in _seq(node.innerChildren()):
        _walk(child, found, ctes)
