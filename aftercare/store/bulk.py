"""Many rows into one table through the driver's own ``executemany``; the rows of new enrollments.

SQLAlchemy's executemany builds a parameter dict for every row and runs every value through its
column type (a UTCDateTime on SQLite: ``astimezone``, then formatting as text). For the 180,000
message rows of a 10,000-patient import that per-value work costs several times the INSERTs
themselves. Here the statement is compiled once, each column's bind processor is looked up once,
and a value met again (every patient of a zone discharged on the same day has the same "day 2
09:00") is converted once. What reaches the database is what SQLAlchemy would have sent: the same
SQL and the same processors, only called less often.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, Table, insert
from sqlalchemy.orm import DeclarativeBase

from aftercare.models import Message
from aftercare.planner import PlannedMessage
from aftercare.statuses import MessageStatus

Row = tuple[Any, ...]
Converter = Callable[[Any], Any]


class BulkInsert:
    """``INSERT INTO table (columns...)`` for many rows in the connection's transaction.

    Rows are tuples in ``columns`` order holding database values: pass Python values through
    :meth:`converter` first for columns whose type converts them (datetimes, JSON). ``columns``
    are in the table's order and include every column with a Python-side default (the driver
    knows nothing of SQLAlchemy's defaults); anything else is a ValueError at once.
    """

    def __init__(
        self, connection: Connection, model: type[DeclarativeBase], columns: Sequence[str]
    ) -> None:
        self._connection = connection
        self._table = table = table_of(model)
        self._columns = tuple(columns)
        self._sql = _compiled(connection.dialect, table, self._columns)
        self._named = not connection.dialect.positional

    def converter(self, column: str, remember: bool = True) -> Converter:
        """The database value of a Python value for ``column``, as its type would bind it.

        With ``remember`` each distinct value is converted once and kept for the life of this
        object (make one per batch so the memory stays bounded); values must then be hashable.
        """
        dialect = self._connection.dialect
        process = self._table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            return _same
        return _Remembered(process).__getitem__ if remember else process

    def execute(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self._named:  # PostgreSQL's psycopg: %(name)s parameters
            named = [dict(zip(self._columns, row, strict=True)) for row in rows]
            self._connection.exec_driver_sql(self._sql, named)
        else:
            self._connection.exec_driver_sql(self._sql, list(rows))


@lru_cache(maxsize=64)
def _compiled(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> str:
    """The INSERT's SQL, compiled once per dialect, table and columns: compiling cost as much as
    the insert itself for the one-row batches of an HL7 message or a single enroll."""
    # for_executemany: PostgreSQL would otherwise add RETURNING id, as for a single row.
    compiled = insert(table).compile(
        dialect=dialect, column_keys=list(columns), for_executemany=True
    )
    if tuple(compiled.binds) != columns:
        raise ValueError(f"{table.name}: the columns must be {list(compiled.binds)}")
    return compiled.string


class _Remembered(dict[Any, Any]):
    """Converted values by value: a hit is a bare dict lookup (no Python frame), a miss converts
    and keeps the result."""

    def __init__(self, process: Converter) -> None:
        super().__init__()
        self._process = process

    def __missing__(self, value: Any) -> Any:
        self[value] = converted = self._process(value)
        return converted


def table_of(model: type[DeclarativeBase]) -> Table:
    """The table behind a model, for Core statements."""
    table = model.__table__
    assert isinstance(table, Table), f"{model.__name__} is not mapped to one table"
    return table


def _same(value: Any) -> Any:
    return value


# --- the rows a batch of new enrollments adds ---------------------------------------------------

MESSAGE_COLUMNS = (
    "enrollment_id",
    "step",
    "occurrence",
    "channel",
    "due_at",
    "planned_at",
    "expires_at",
    "status",
    "attempts",
    "next_attempt_at",
)


def insert_messages(
    connection: Connection, plans: Iterable[tuple[int, Sequence[PlannedMessage]]]
) -> list[int]:
    """Pending message rows for (enrollment id, its planned messages), the same as
    ``aftercare.store.enrollments.message_row`` gives; how many each enrollment got.

    Most of what an import writes (18 rows a patient).
    """
    writer = BulkInsert(connection, Message, MESSAGE_COLUMNS)
    to_db = writer.converter("due_at")  # the same for all four UTCDateTime columns
    pending = MessageStatus.PENDING.value
    rows: list[Row] = []
    counts: list[int] = []
    for enrollment_id, planned in plans:
        counts.append(len(planned))
        for m in planned:
            due = to_db(m.due_at)
            rows.append(
                (
                    enrollment_id,
                    m.step,
                    m.occurrence,
                    m.channel,
                    due,
                    to_db(m.planned_at),
                    to_db(m.expires_at),
                    pending,
                    0,
                    due,  # next_attempt_at
                )
            )
    writer.execute(rows)
    return counts
