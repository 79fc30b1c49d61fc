"""Bad JSON-lines data: every error names the file and line, what was expected and the fix."""

from __future__ import annotations

import dataclasses
import re

import pytest

from mechsel.errors import DataError, did_you_mean
from mechsel.tasks import TaskConfig, load_examples, rows_to_examples

GOOD = b'{"review": "fine", "stars": "good"}\n'

TOY = TaskConfig(
    name="toy_errors",
    template="Review: {review}\nVerdict:",
    input_fields=("review",),
    label_field="stars",
    label_names=("bad", "good"),
)


def _task(tmp_path, content: bytes) -> TaskConfig:
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    return dataclasses.replace(TOY, files={"train": str(path)})


@pytest.mark.parametrize(
    ("content", "line", "byte"),
    [
        (GOOD + b'{"review": "caf\xe9", "stars": "good"}\n', 2, "0xe9"),  # Latin-1
        (b'\xff\xfe{\x00"\x00' + b"\n", 1, "0xff"),  # UTF-16 with its byte-order mark
        (GOOD * 3 + b'{"review": "\x80", "stars": "bad"}\n', 4, "0x80"),
    ],
)
def test_non_utf8_lines_name_the_file_line_and_byte(tmp_path, content, line, byte):
    cfg = _task(tmp_path, content)
    with pytest.raises(DataError) as info:
        load_examples(cfg, "train")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'train.jsonl'}:{line} is not UTF-8") and byte in message
    assert "re-save the file as UTF-8" in message and "\n" not in message


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        (b"[1, 2]", "array"),
        (b'"just text"', "string"),
        (b"3.5", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
        (b'[{"review": "x", "stars": "good"}]', "array"),
    ],
)
def test_rows_that_are_not_objects_name_the_file_and_line(tmp_path, row, kind):
    cfg = _task(tmp_path, GOOD + b"\n" + row + b"\n")  # the blank line still counts
    with pytest.raises(DataError, match=rf"train\.jsonl:3 holds a JSON {kind}, but every line must be one object"):
        load_examples(cfg, "train")


def test_a_byte_order_mark_and_blank_lines_are_accepted(tmp_path):
    cfg = _task(tmp_path, b"\xef\xbb\xbf" + GOOD + b"\n  \n" + GOOD)
    assert [e.label for e in load_examples(cfg, "train")] == [1, 1]


def test_invalid_json_still_names_its_line(tmp_path):
    cfg = _task(tmp_path, GOOD + b'{"review": "x",\n')
    with pytest.raises(DataError, match=r"train\.jsonl:2 is not valid JSON"):
        load_examples(cfg, "train")


@pytest.mark.parametrize("row", [[1, 2], "text", 7, None])
def test_rows_given_in_python_that_are_not_mappings_say_so(row):
    with pytest.raises(DataError, match=re.escape("Task 'toy_errors', split 'train', row 1 is a ")):
        rows_to_examples(TOY, [{"review": "ok", "stars": "bad"}, row], "train")


def test_did_you_mean_compares_non_strings_as_text():
    assert did_you_mean(1, [1, 2, "10"]) == " Did you mean '1', '10'?"
    assert did_you_mean("sentence", [0, None]) == ""
