"""Reading rating logs and item files in the layouts MovieLens ships.

Ratings: `ratings.csv` (ml-latest, ml-25m: a `userId,movieId,rating,timestamp`
header), ml-100k's `u.data` (tab-separated, no header) and ml-1m's
`ratings.dat` (`::`-separated), or any delimited file with a header naming
`recommend.user_column`, `item_column`, `rating_column` and `timestamp_column`.
A file without a header is read in MovieLens' column order. A row with a
missing id, too few fields or a rating or timestamp that is not a number is
skipped and counted, never fatal; a file with no usable row is an error.

Items: `movies.csv` (`movieId,title,genres`, genres `|`-separated), ml-1m's
`movies.dat` and ml-100k's `u.item` (Latin-1, genre flags).
"""

import csv
import dataclasses
import io
import itertools
import math
import os
from typing import List, Optional, Tuple

import numpy as np

from tfsuite.errors import user_error

MAX_REPORTED_SKIPS = 20
# ml-100k's u.item genre flags, in column order (its u.genre file)
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
                 "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
                 "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
# items files looked for next to a ratings file, by its name
ITEM_FILES = {"u.data": "u.item", "ratings.dat": "movies.dat"}


@dataclasses.dataclass
class Ratings:
    """Interactions read from a file: raw ids as text, and what was skipped."""

    users: List[str]
    items: List[str]
    ratings: Optional[np.ndarray]  # float32, or None without a rating column
    timestamps: Optional[np.ndarray]  # float64, or None without a timestamp column
    path: str = ""
    skipped_lines: int = 0
    skipped: List[Tuple[int, str]] = dataclasses.field(default_factory=list)  # (line, why)

    def __len__(self):
        return len(self.users)


def _read_text(path, what, key):
    if not path or not os.path.isfile(path):
        raise user_error(f"The {what} does not exist", "an existing file", f"{key}={path!r}",
                         "Give the path of a MovieLens ratings.csv / u.data / ratings.dat, "
                         "or a CSV with a header.")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # e.g. a spreadsheet's "Unicode text" export
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # ml-100k and ml-1m item titles are Latin-1


DELIMITERS = ("::", "\t", ",", ";", "|")
SNIFF_LINES = 20


def _split(lines, delimiter):
    if delimiter == "::":  # csv takes one-character delimiters; ml-1m fields are unquoted
        return [line.split("::") for line in lines]
    return list(csv.reader(lines, delimiter=delimiter))


def _delimiter(text):
    """The delimiter that splits the first lines into the most fields, the same number
    on every line (quotes respected); ties go to the earlier of `DELIMITERS`."""
    lines = []
    for line in io.StringIO(text, newline=""):
        if line.strip():
            lines.append(line.rstrip("\r\n"))
        if len(lines) == SNIFF_LINES:
            break
    best, best_width = ",", 1
    for delimiter in DELIMITERS:
        try:
            widths = {len(fields) for fields in _split(lines, delimiter)}
        except csv.Error:
            continue
        width = widths.pop() if len(widths) == 1 else 0
        if width > best_width:
            best, best_width = delimiter, width
    return best


def _rows(text, delimiter, path, key):
    """(line number, fields) of each non-blank line, one at a time."""
    if delimiter == "::":
        for n, line in enumerate(io.StringIO(text, newline=""), 1):
            if line.strip():
                yield n, line.rstrip("\r\n").split("::")
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 0
    try:
        for row in reader:
            if any("\n" in f for f in row):  # a quote opened and never closed
                raise csv.Error("a field runs over several lines")
            if any(f.strip() for f in row):
                yield reader.line_num, row
            line = reader.line_num
    except csv.Error as e:
        long_line = _first_line_longer_than(text, csv.field_size_limit())
        if long_line is not None:
            number, length = long_line
            raise user_error("A line of the file is far too long for a ratings file",
                             f"lines of at most {csv.field_size_limit():,} characters (a "
                             "user, an item, a rating, a time)", f"{key}={path!r} (line "
                             f"{number} has {length:,} characters)", "Check that this is "
                             "the ratings file; if it is, that line is damaged: fix or "
                             "remove it.") from None
        raise user_error("The file has an unclosed quote", "fields quoted with a closing "
                         '"', f"{key}={path!r} (from line {line + 1}: {e})",
                         "Fix or remove that line (a quote inside a field is written "
                         'as "").') from None


def _first_line_longer_than(text, limit):
    """(line number, length) of the first physical line longer than `limit`, or None."""
    start, number = 0, 1
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if end - start > limit:
            return number, end - start
        start, number = end + 1, number + 1
    return None


def read_ratings(path, r, key="data.path"):
    """Reads a ratings file with the column names of `r` (a `RecommendConfig`)."""
    text = _read_text(path, "ratings file", key)
    if not text.strip():
        raise user_error("The ratings file is empty", "a header and rating rows, e.g. "
                         "userId,movieId,rating,timestamp", f"{key}={path!r} (no rows)")
    rows = _rows(text, _delimiter(text), path, key)
    first_line, first = next(rows)
    columns = _columns(first, r, path, key)
    if not columns["header"]:
        rows = itertools.chain([(first_line, first)], rows)
    users, items, values, times, skipped = [], [], [], [], []
    width = 1 + max(i for i in columns.values() if isinstance(i, int))
    count = 0
    for line, fields in rows:
        count += 1
        why = _parse(fields, columns, width, users, items, values, times)
        if why:
            skipped.append((line, why))
    if not users:
        raise user_error("The ratings file has no usable row", f"rows with a user id, an "
                         f"item id{', a numeric rating' * bool(r.rating_column)}"
                         f"{' and a numeric timestamp' * bool(r.timestamp_column)}",
                         f"{key}={path!r} ({count} rows, all skipped; first: line "
                         f"{skipped[0][0]}: {skipped[0][1]})" if skipped else
                         f"{key}={path!r} (a header only)")
    return Ratings(users, items,
                   np.asarray(values, np.float32) if r.rating_column else None,
                   np.asarray(times, np.float64) if r.timestamp_column else None,
                   path=path, skipped_lines=len(skipped), skipped=skipped[:MAX_REPORTED_SKIPS])


def _columns(first_row, r, path, key):
    """Field index of each configured column; `header` tells whether row 1 names them."""
    names = {"user": r.user_column, "item": r.item_column, "rating": r.rating_column,
             "timestamp": r.timestamp_column}
    header = [f.strip() for f in first_row]
    wanted = {k: v for k, v in names.items() if v}
    if r.user_column in header or r.item_column in header:
        missing = [v for v in wanted.values() if v not in header]
        if missing:
            raise user_error("The ratings file lacks a column", f"a header with "
                             f"{sorted(wanted.values())}", f"{key}={path!r} (header: "
                             f"{header}; missing: {missing})", "Name the columns with "
                             "--set recommend.user_column=... (item_column, rating_column, "
                             "timestamp_column); set rating_column or timestamp_column to "
                             "null when the file has none.")
        return {"header": True, **{k: header.index(v) for k, v in wanted.items()}}
    if _is_number(header[0]) and len(header) >= 2:
        # No header: MovieLens' column order, user, item, then rating and timestamp when
        # the config has them (an implicit log of user,item,timestamp has no rating).
        return {"header": False, **{k: i for i, k in enumerate(wanted)}}
    raise user_error("The ratings file lacks a column", f"a header naming "
                     f"{r.user_column!r} and {r.item_column!r} (recommend.user_column, "
                     "item_column), or headerless rows in MovieLens' order (user, item, "
                     "rating, timestamp)", f"{key}={path!r} (first row: {header[:8]})",
                     "Set --set recommend.user_column=... and recommend.item_column=... to "
                     "the names in the header.")


def _parse(fields, columns, width, users, items, values, times):
    """Appends one row's values; returns why it was skipped, or None."""
    if len(fields) < width:
        return f"{len(fields)} fields, expected at least {width}"
    user, item = fields[columns["user"]].strip(), fields[columns["item"]].strip()
    if not user or not item:
        return "an empty user or item id"
    parsed = []
    for name in ("rating", "timestamp"):
        if name in columns:
            text = fields[columns[name]].strip()
            if not _is_number(text):
                return f"{name} {text!r} is not a number"
            parsed.append(float(text))
    users.append(user)
    items.append(item)
    if "rating" in columns:
        values.append(parsed.pop(0))
    if "timestamp" in columns:
        times.append(parsed.pop(0))
    return None


def _is_number(text):
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def default_items_path(ratings_path):
    """The items file MovieLens ships next to a ratings file, if it is there."""
    folder, name = os.path.split(ratings_path)
    path = os.path.join(folder, ITEM_FILES.get(name, "movies.csv"))
    return path if os.path.isfile(path) else None


def read_items(path):
    """{raw item id: (title, [genres])} from movies.csv, movies.dat or u.item."""
    text = _read_text(path, "items file", "recommend.items_path")
    rows = list(_rows(text, _delimiter(text), path, "recommend.items_path"))
    items = {}
    if os.path.basename(path) == "u.item":
        for _, f in rows:
            flags = f[-len(ML100K_GENRES):]
            items[f[0].strip()] = (f[1].strip(), [g for g, x in zip(ML100K_GENRES, flags)
                                                  if x.strip() == "1"])
        return items
    header = [f.strip() for f in rows[0][1]] if rows else []
    body = rows[1:] if header[:1] and not header[0].isdigit() else rows
    for _, f in body:
        if len(f) >= 2 and f[0].strip():
            genres = f[2].strip().split("|") if len(f) >= 3 else []
            items[f[0].strip()] = (f[1].strip(), [g for g in genres
                                                  if g and g != "(no genres listed)"])
    return items
