"""Bad data: every malformed ticket file gets its documented one-line error and changes nothing.

Each case goes through ``contract.parse_tickets`` and through ``ticket-urgency upload`` (in
process with typer's CliRunner, and a couple as a real subprocess), on an empty store and on a
store that already holds a valid reference, new data and combined set. The store is
snapshotted byte for byte before and after. The documented messages are the table in
``docs/data-contract.md``. What DESIGN.md calls normal input is accepted.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from data_support import HEADER, NEW_CSV, REFERENCE_CSV, snapshot_storage, snapshot_tree
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.contract import DataContractError, Labels, parse_tickets
from ticket_urgency.datasets import NEW_KEY, REFERENCE_KEY, upload
from ticket_urgency.storage import LocalStorage, Storage

pytestmark = pytest.mark.reliability

runner = CliRunner()
ROW = b"Down,Server is down,email,Gold,high\n"
ROW2 = b"Slow,Pages load slowly,web,Free,low\n"
IDH = b"ticket_id,title,description,source,customer_tier,label_urgency\n"
TIMEH = b"title,description,source,customer_tier,label_urgency,created_at\n"


@dataclass(frozen=True)
class Bad:
    """A malformed file: its bytes, the role it is uploaded as, and the expected message."""

    id: str
    data: bytes
    expected: str  # a fragment of the message after "<file>: "
    role: str = "new"  # "new" (labels optional) or "reference" (labels required)


BAD = [
    Bad("empty-file", b"", "is empty"),
    Bad("whitespace-only", b"  \n\t\r\n \n", "is empty"),
    Bad("header-only", HEADER, "has a header but no rows"),
    Bad("header-only-no-newline", HEADER.rstrip(), "has a header but no rows"),
    Bad(
        "missing-column",
        b"title,source,customer_tier,label_urgency\nDown,email,Gold,high\n",
        "is missing required column 'description'; found title, source, customer_tier, "
        "label_urgency",
    ),
    Bad(
        "missing-columns",
        b"title,description\nDown,Server is down\n",
        "is missing required columns 'source', 'customer_tier'",
    ),
    Bad(
        "duplicate-column",
        b"title,description,title,source,customer_tier\nA,b,c,email,Gold\n",
        "column 'title' appears more than once in the header",
    ),
    Bad(
        "duplicate-column-after-strip",
        b"title,description,source, source,customer_tier\nA,b,email,web,Gold\n",
        "column 'source' appears more than once in the header",
    ),
    Bad(
        "empty-column-names",
        b"title,description,source,customer_tier,label_urgency,,\nA,b,email,Gold,high,,\n",
        "has a header with an empty column name (column 6, 7)",
    ),
    Bad(
        "latin-1",
        HEADER + ROW + "Café crème,Ça ne marche pas,email,Gold,high\n".encode("latin-1"),
        "is not valid UTF-8 (byte 0xe9 on line 3); re-save it as UTF-8",
    ),
    Bad(
        "windows-1252-quotes",
        HEADER + "Broken,\u201cIt fails\u201d,email,Gold,high\n".encode("cp1252"),
        "is not valid UTF-8 (byte 0x93 on line 2)",
    ),
    Bad(
        "utf-16",
        (HEADER + ROW).decode().encode("utf-16"),
        "is not a text CSV file (it contains NUL bytes, first on line 1)",
    ),
    Bad(
        "unterminated-quote",
        HEADER + ROW + b'Oops,"never closed,email,Gold,high\n' + ROW2,
        "is not a parsable CSV: unterminated quote (EOF inside string starting at row 2)",
    ),
    Bad(
        "binary-garbage-gzip",
        gzip.compress(HEADER + ROW * 20, mtime=0),
        "is not a text CSV file (it contains NUL bytes",
    ),
    Bad(
        "binary-garbage-no-nul",
        bytes(range(0x80, 0x100)) * 8,
        "is not valid UTF-8 (byte 0x80 on line 1)",
    ),
    Bad(
        "nul-byte-in-field",
        HEADER + ROW + b"Down,Server\x00 is down,email,Gold,high\n",
        "is not a text CSV file (it contains NUL bytes, first on line 3)",
    ),
    Bad(
        "xlsx-renamed",
        b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)),
        "is not a text CSV file (it contains NUL bytes",
    ),
    Bad(
        "html-error-page",
        b"<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>\n",
        "is missing required columns 'title', 'description', 'source', 'customer_tier'; "
        "found <!DOCTYPE html>",
    ),
    Bad(
        "json-file",
        b'[{"title": "Down", "description": "Server is down"}]\n',
        "is missing required columns 'title', 'description', 'source', 'customer_tier'",
    ),
    Bad(
        "semicolon-separated",
        HEADER.replace(b",", b";") + ROW.replace(b",", b";"),
        "is missing required columns 'title', 'description', 'source', 'customer_tier'; "
        "found title;description;source;customer_tier;label_urgency",
    ),
    Bad(
        "excel-sep-line",
        b"sep=,\n" + HEADER + ROW,
        "is missing required columns 'title', 'description', 'source', 'customer_tier'",
    ),
    Bad(
        "quoted-newline-in-header",
        b'"ti\ntle",description,source,customer_tier,label_urgency\n' + ROW,
        "is missing required column 'title'; found ti\\ntle, description",
    ),
    Bad(
        "reference-empty-label",
        HEADER + ROW + b"Slow,Pages load slowly,web,Free,\n",
        "column 'label_urgency' is empty; every reference row must be labelled (rows 2)",
        "reference",
    ),
    Bad(
        "reference-nan-labels",
        HEADER + b"Down,x,email,Gold,NaN\n" + ROW + b"Slow,y,web,Free,nan\nA,b,web,Gold,N/A\n",
        "column 'label_urgency' is empty; every reference row must be labelled (rows 1, 3, 4)",
        "reference",
    ),
    Bad(
        "reference-no-label-column",
        b"title,description,source,customer_tier\nDown,Server is down,email,Gold\n",
        "column 'label_urgency' is missing; the reference must be labelled",
        "reference",
    ),
    Bad(
        "unparsable-created-at",
        TIMEH + b"Down,x,email,Gold,high,2025-03-01T10:00:00Z\nSlow,y,web,Free,low,yesterday\n",
        "column 'created_at' is not an ISO 8601 timestamp (rows 2)",
    ),
    Bad(
        "impossible-created-at",
        TIMEH + b"Down,x,email,Gold,high,2025-13-45T10:00:00Z\n",
        "column 'created_at' is not an ISO 8601 timestamp (rows 1)",
    ),
    Bad(
        "duplicate-ticket-id",
        IDH + b"t-1,A,a,email,Gold,high\nt-2,B,b,web,Free,low\nt-1,C,c,chat,Gold,low\n",
        "column 'ticket_id' has duplicate values; ticket ids must be unique (rows 1, 3)",
    ),
    Bad(
        "empty-ticket-id",
        IDH + b"t-1,A,a,email,Gold,high\n ,B,b,web,Free,low\n",
        "column 'ticket_id' is empty (rows 2)",
    ),
    Bad("empty-source", HEADER + ROW + b"Slow,y,,Free,low\n", "column 'source' is empty (rows 2)"),
    Bad(
        "whitespace-source",
        HEADER + b"Slow,y,   ,Free,low\n",
        "column 'source' is empty (rows 1)",
    ),
    Bad(
        "empty-customer-tier",
        HEADER + ROW + ROW + b"Slow,y,web,,low\n",
        "column 'customer_tier' is empty (rows 3)",
    ),
    Bad(
        "title-and-description-empty",
        HEADER + ROW + b", ,web,Free,low\n",
        "has rows where title and description are both empty (rows 2)",
    ),
    Bad(
        "many-offending-rows",
        HEADER + b",,web,Free,low\n" * 12,
        "has rows where title and description are both empty (rows 1, 2, 3, 4, 5 and 7 more)",
    ),
    Bad(
        "extra-field-first-row",
        HEADER + b"Down,Server is down,email,Gold,high,surplus\n" + ROW2,
        "has rows with more fields than the header (is a comma unquoted?) (rows 1)",
    ),
    Bad(
        "extra-fields-later-rows",
        HEADER + ROW + b"Slow,pages, slow,web,Free,low\n" + ROW2 + b"A,b,c,d,e,f,g\n",
        "has rows with more fields than the header (is a comma unquoted?) (rows 2, 4)",
    ),
    Bad(
        "short-row",
        HEADER + ROW + b"Slow,Pages load slowly\n",
        "column 'source' is empty (rows 2)",
    ),
]
assert len(BAD) >= 30
BAD_BY_ID = {case.id: case for case in BAD}


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding a valid reference, new data and combined set (copied per test)."""
    root = tmp_path_factory.mktemp("seeded") / "store"
    storage = LocalStorage(root)
    upload(
        storage,
        parse_tickets(REFERENCE_CSV, "ref.csv", labels="required"),
        parse_tickets(NEW_CSV, "new.csv"),
    )
    assert storage.exists(REFERENCE_KEY) and storage.exists(NEW_KEY)
    return root


@pytest.fixture(params=["empty-store", "seeded-store"])
def store(request: pytest.FixtureRequest, tmp_path: Path, seeded_template: Path) -> Path:
    """The storage root the CLI uses (``TICKET_URGENCY_STORAGE``): empty or already seeded."""
    root = tmp_path / "store"
    if request.param == "seeded-store":
        shutil.copytree(seeded_template, root)
    return root


def good_files(tmp_path: Path) -> tuple[Path, Path]:
    ref, new = tmp_path / "good_ref.csv", tmp_path / "good_new.csv"
    ref.write_bytes(REFERENCE_CSV)
    new.write_bytes(NEW_CSV)
    return ref, new


def assert_one_line_error(stderr: str, file: str, expected: str) -> None:
    """The CLI printed exactly one line, ``error: <file>: <message>.``, and no traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {file}: "), lines[0]
    assert expected in lines[0], lines[0]
    assert lines[0].endswith(".")
    assert "Traceback" not in stderr


def run_upload(args: list[str]) -> tuple[int, str, str]:
    result = runner.invoke(app, ["upload", *args])
    assert not isinstance(result.exception, Exception | None) or isinstance(
        result.exception, SystemExit
    ), f"unhandled exception: {result.exception!r}"
    return result.exit_code, result.stdout, result.stderr


def upload_args(case: Bad, bad: Path, good_ref: Path, good_new: Path) -> list[str]:
    if case.role == "reference":
        return ["--reference", str(bad), "--new", str(good_new)]
    return ["--reference", str(good_ref), "--new", str(bad)]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_parse_tickets_rejects_with_documented_message(case: Bad) -> None:
    labels: Labels = "required" if case.role == "reference" else "optional"
    with pytest.raises(DataContractError) as info:
        parse_tickets(case.data, f"bad/{case.id}.csv", labels=labels)
    message = str(info.value)
    assert message.startswith(f"bad/{case.id}.csv: "), message
    assert case.expected in message, message
    assert "\n" not in message and message.endswith(".")
    assert info.value.file == f"bad/{case.id}.csv"


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_cli_upload_rejects_and_changes_nothing(case: Bad, store: Path, tmp_path: Path) -> None:
    good_ref, good_new = good_files(tmp_path)
    bad = tmp_path / f"{case.id}.csv"
    bad.write_bytes(case.data)
    before = snapshot_tree(store)

    code, out, err = run_upload(upload_args(case, bad, good_ref, good_new))

    assert code == 2, (out, err)
    assert_one_line_error(err, str(bad), case.expected)
    assert out == ""
    assert snapshot_tree(store) == before


def test_bad_new_file_alongside_new_reference_stores_no_reference(tmp_path: Path) -> None:
    """Both files are validated before the first write: a good reference is not stored when
    the new file that comes with it is bad."""
    good_ref, _ = good_files(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(BAD_BY_ID["latin-1"].data)
    code, _, err = run_upload(["--reference", str(good_ref), "--new", str(bad)])
    assert code == 2 and "is not valid UTF-8" in err
    assert snapshot_tree(tmp_path / "store") == {}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.mkdir(), "is a directory, not a CSV file"),
        (lambda p: None, "does not exist"),
    ],
    ids=["directory", "missing-path"],
)
def test_cli_rejects_paths_that_are_not_files(
    make: object, expected: str, store: Path, tmp_path: Path
) -> None:
    good_ref, good_new = good_files(tmp_path)
    target = tmp_path / "not_a_file.csv"
    make(target)  # type: ignore[operator]
    before = snapshot_tree(store)
    for args in (
        ["--reference", str(target), "--new", str(good_new)],
        ["--reference", str(good_ref), "--new", str(target)],
    ):
        code, out, err = run_upload(args)
        assert code == 2, (out, err)
        assert_one_line_error(err, str(target), expected)
    assert snapshot_tree(store) == before


@pytest.mark.parametrize("case_id", ["latin-1", "reference-nan-labels"])
def test_cli_subprocess_gives_one_line_and_exit_2(
    case_id: str, tmp_path: Path, seeded_template: Path
) -> None:
    """The installed console script, as a user runs it: one line on stderr, exit code 2."""
    case = BAD_BY_ID[case_id]
    store = tmp_path / "store"
    shutil.copytree(seeded_template, store)
    good_ref, good_new = good_files(tmp_path)
    bad = tmp_path / f"{case.id}.csv"
    bad.write_bytes(case.data)
    before = snapshot_tree(store)
    env = {**os.environ, "TICKET_URGENCY_STORAGE": str(store)}
    exe = Path(sys.executable).with_name("ticket-urgency")
    proc = subprocess.run(
        [str(exe), "upload", *upload_args(case, bad, good_ref, good_new)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc
    assert_one_line_error(proc.stderr, str(bad), case.expected)
    assert proc.stdout == ""
    assert snapshot_tree(store) == before


def test_bad_file_changes_nothing_on_gcs(gcs_storage: Storage, tmp_path: Path) -> None:
    """The same guarantee on the GCS emulator: every object and its generation unchanged."""
    upload(
        gcs_storage,
        parse_tickets(REFERENCE_CSV, "ref.csv", labels="required"),
        parse_tickets(NEW_CSV, "new.csv"),
    )
    from ticket_urgency.storage import GCSStorage

    assert isinstance(gcs_storage, GCSStorage)

    def generations() -> dict[str, int]:
        return {
            b.name: int(b.generation)
            for b in gcs_storage.client.list_blobs(gcs_storage.bucket_name)
        }

    before, gens = snapshot_storage(gcs_storage), generations()
    good_ref, good_new = good_files(tmp_path)
    for case_id in ("unterminated-quote", "duplicate-ticket-id", "reference-empty-label"):
        case = BAD_BY_ID[case_id]
        bad = tmp_path / f"{case.id}.csv"
        bad.write_bytes(case.data)
        code, _, err = run_upload(upload_args(case, bad, good_ref, good_new))
        assert code == 2
        assert_one_line_error(err, str(bad), case.expected)
    assert snapshot_storage(gcs_storage) == before
    assert generations() == gens


# ---------------------------------------------------------------------------- 100 MB files
BIG_ROW = (
    b"Checkout fails after payment,"
    b'"Customer reports that the checkout page throws a 500 after payment, '
    + b"stack frame at com.shop.Checkout.pay(Checkout.java:42) " * 5
    + b'",email,Gold,high\n'
)
BIG_ROWS = 100_000_000 // len(BIG_ROW) // 1000 * 1000


@pytest.fixture(scope="module")
def big_valid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid ~100 MB ticket file, built from a repeated block (fast)."""
    path = tmp_path_factory.mktemp("big") / "big_valid.csv"
    block = BIG_ROW * 1000
    with path.open("wb") as fh:
        fh.write(HEADER)
        for _ in range(BIG_ROWS // 1000):
            fh.write(block)
    assert path.stat().st_size >= 99_000_000
    return path


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("Café,crème,email,Gold,high\n".encode("latin-1"), "is not valid UTF-8 (byte 0xe9 on line"),
        (b"Down,Ser\x00ver,email,Gold,high\n", "is not a text CSV file (it contains NUL bytes"),
    ],
    ids=["latin-1-at-the-end", "nul-at-the-end"],
)
def test_100mb_file_with_a_defect_in_its_last_row_is_rejected(
    tail: bytes, expected: str, big_valid: Path, store: Path, tmp_path: Path
) -> None:
    """The whole file is checked, not a prefix, and the error names the right line."""
    bad = tmp_path / "big_bad.csv"
    shutil.copyfile(big_valid, bad)
    with bad.open("ab") as fh:
        fh.write(tail)
    last_line = 1 + BIG_ROWS + 1  # header, the valid rows, then the bad one
    before = snapshot_tree(store)
    good_ref, _ = good_files(tmp_path)

    started = time.monotonic()
    code, out, err = run_upload(["--reference", str(good_ref), "--new", str(bad)])
    elapsed = time.monotonic() - started

    assert code == 2, (out, err)
    assert_one_line_error(err, str(bad), f"{expected}")
    assert f"line {last_line}" in err
    assert snapshot_tree(store) == before
    assert elapsed < 20, f"rejecting a 100 MB file took {elapsed:.1f} s"


@pytest.mark.slow
def test_100mb_valid_file_is_accepted_with_bounded_memory(big_valid: Path) -> None:
    """A valid 100 MB file is accepted (size alone is no contract violation); parsing it in a
    fresh process adds well under 8x the file size to the peak (interpreter and imports aside)."""
    code = (
        "import json, resource, sys, time\n"
        "from ticket_urgency.contract import read_ticket_file\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "t = time.monotonic()\n"
        "df = read_ticket_file(sys.argv[1])\n"
        "print(json.dumps({'rows': len(df), 'ids': int(df['ticket_id'].nunique()),\n"
        "  'seconds': time.monotonic() - t,\n"
        "  'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(big_valid)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    size_mb = big_valid.stat().st_size / 2**20
    assert stats["rows"] == BIG_ROWS
    assert stats["ids"] == BIG_ROWS  # identical rows still get unique derived ids
    assert stats["peak_mb"] < 8 * size_mb, stats
    print(f"100 MB parse: {stats}")


# ---------------------------------------------------------------------------- normal input
def _upload_json(args: list[str]) -> dict[str, object]:
    result = runner.invoke(app, ["upload", *args, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _stored_new(store: Path) -> pd.DataFrame:
    return parse_tickets((store / NEW_KEY).read_bytes(), "stored new")


def test_normal_input_is_accepted_and_kept_exactly(tmp_path: Path) -> None:
    """Extra columns, empty descriptions, 50 kB texts, unicode, emoji, stack traces, quoted
    newlines and commas, a BOM and CRLF line endings are all normal; the text is kept as is."""
    store = tmp_path / "store"
    good_ref, _ = good_files(tmp_path)
    trace = 'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n' * 40
    long_text = ("Der Server antwortet nicht; 服务器没有响应。 🔥 " * 2000)[:50_000]
    rows = pd.DataFrame(
        {
            "ticket_id": ["u-1", "u-2", "u-3", "u-4", "u-5"],
            "title": ["Crash", "Ünïcödé ✓", "Empty description", "Long", '"Quoted", comma'],
            "description": [trace, "emoji 😀🚀 and RTL שלום", "", long_text, "a,b\r\nc"],
            "source": ["api", "web", "email", "chat", "phone"],
            "customer_tier": ["Gold", "Free", "Silver", "Bronze", "Platinum"],
            "label_urgency": ["critical", "", "low", "urgent", ""],
            "team": ["core", "ui", "", "db", "billing"],
        }
    )
    text = rows.to_csv(index=False, lineterminator="\r\n")
    new = tmp_path / "new.csv"
    new.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # BOM + CRLF

    report = _upload_json(["--reference", str(good_ref), "--new", str(new)])

    assert report["added"] == 5 and report["dropped"] == 0
    assert report["new_labels"] == ["urgent"]  # reported, not rejected
    stored = _stored_new(store).set_index("ticket_id")
    for _, row in rows.iterrows():
        got = stored.loc[row["ticket_id"]]
        for col in ("title", "source", "customer_tier", "label_urgency", "team"):
            assert got[col] == row[col]
        # CRLF inside a quoted field is data; CRLF between records is a line ending
        assert got["description"] == row["description"]
    assert len(str(stored.loc["u-4", "description"])) == 50_000
    combined = parse_tickets((store / "datasets/combined_tickets.csv").read_bytes(), "combined")
    assert len(combined) == 5 + 3  # reference + labelled new rows
    assert "team" in combined.columns


@pytest.mark.parametrize(
    ("case_id", "data", "rows"),
    [
        ("crlf", (HEADER + ROW + ROW2).replace(b"\n", b"\r\n"), 2),
        ("cr-only", (HEADER + ROW + ROW2).replace(b"\n", b"\r"), 2),
        ("bom", b"\xef\xbb\xbf" + HEADER + ROW, 1),
        ("quoted-newlines", HEADER + b'Down,"line 1\nline 2\n\nline 4",email,Gold,high\n', 1),
        ("blank-lines", HEADER + b"\n" + ROW + b"\n\n" + ROW2 + b"\n", 2),
        ("new-without-label-column", b"title,description,source,customer_tier\nA,b,web,Gold\n", 1),
        ("new-nan-labels", HEADER + b"A,b,web,Gold,NaN\nC,d,web,Gold,\n", 2),
        ("empty-created-at", TIMEH + b"A,b,web,Gold,low,\nC,d,web,Gold,,2025-01-01\n", 2),
        ("padded-categoricals", HEADER + b"A,b, web , Gold ,  high \n", 1),
    ],
)
def test_accepted_variants(case_id: str, data: bytes, rows: int, tmp_path: Path) -> None:
    good_ref, _ = good_files(tmp_path)
    new = tmp_path / f"{case_id}.csv"
    new.write_bytes(data)
    report = _upload_json(["--reference", str(good_ref), "--new", str(new)])
    assert report["added"] == rows
    stored = _stored_new(tmp_path / "store")
    assert len(stored) == rows
    assert not stored["label_urgency"].str.lower().isin(["nan", "none"]).any()
    assert stored["source"].isin(["email", "web"]).all()
    if case_id == "quoted-newlines":
        assert stored["description"].iloc[0] == "line 1\nline 2\n\nline 4"
    if case_id == "bom":
        assert "title" in stored.columns  # not "\ufefftitle"


def test_late_file_without_created_at_keeps_stored_times(tmp_path: Path) -> None:
    """A late-label file that lacks created_at (or an extra column) neither erases the stored
    values nor leaves a stored file that breaks the contract on the next upload."""
    store = tmp_path / "store"
    good_ref, good_new = good_files(tmp_path)
    _upload_json(["--reference", str(good_ref), "--new", str(good_new)])
    late = tmp_path / "late.csv"
    late.write_bytes(IDH + b"n-2,Export broken,CSV export is empty,email,Bronze,high\n")
    extra = tmp_path / "extra.csv"
    extra.write_bytes(IDH + b"n-9,Other,Something else,web,Gold,low\n")
    report = _upload_json(["--new", str(late)])
    assert report["replaced"] == 1
    report = _upload_json(["--new", str(extra)])
    assert report["added"] == 1
    stored = _stored_new(store).set_index("ticket_id")
    assert stored.loc["n-2", "label_urgency"] == "high"
    assert stored.loc["n-2", "created_at"] == "2025-03-01T11:00:00Z"
    assert stored.loc["n-9", "created_at"] == ""  # unknown time, still a valid file
    again = _upload_json(["--new", str(good_new)])
    assert again["added"] == 0
