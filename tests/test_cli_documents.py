"""``--file PATH``: every command that reads TEXT reads a document instead, and gives the same answer."""

from __future__ import annotations

import json

import pytest

from attnscope.cli.main import build_parser, main
from tests.document_files import CHINESE, DOCX_TEXT, ENGLISH, docx_bytes, image_only_pdf, pdf_bytes
from tests.server.conftest import assert_same
from tests.test_cli import run


def cli_json(*args: str) -> dict:
    result = run(*args, "--json", "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout.decode("utf-8"))


def test_analyze_of_a_pdf_is_the_analysis_of_its_text(tmp_path):
    path = tmp_path / "首都.pdf"
    path.write_bytes(pdf_bytes([[ENGLISH, CHINESE]]))
    text = f"{ENGLISH}\n{CHINESE}"
    from_file = cli_json("analyze", "--file", str(path), "--model", "tiny:qwen2", "--layer", "1", "--head", "0")
    from_text = cli_json("analyze", text, "--model", "tiny:qwen2", "--layer", "1", "--head", "0")
    assert from_file["text"] == text
    assert_same(from_file, from_text)


def test_attribute_of_a_docx_with_the_loss_objective_is_that_of_its_text(tmp_path):
    path = tmp_path / "report.docx"
    path.write_bytes(docx_bytes())
    common = ("--method", "grad-x-input", "--objective", "loss", "--model", "tiny:llama")
    from_file = cli_json("attribute", "--file", str(path), *common)
    from_text = cli_json("attribute", DOCX_TEXT, *common)
    assert from_file["objective"] == "loss"
    assert_same(from_file, from_text)


def test_a_markdown_file_is_read_as_written(tmp_path, capsys):
    path = tmp_path / "notes.md"
    path.write_bytes(f"# {CHINESE}\n".encode())
    from attnscope.cli.common import read_text

    assert read_text(None, str(path)) == f"# {CHINESE}"


def test_every_command_that_reads_text_takes_file():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    takes_text = {
        name
        for name, command in commands.items()
        if any(a.dest == "text" and not a.option_strings for a in command._actions)
    }
    assert {"analyze", "generate", "attribute", "agreement", "heads", "parts", "report", "audit"} <= takes_text
    for name in takes_text:
        assert any(a.dest == "text_file" for a in commands[name]._actions), name


@pytest.mark.parametrize(
    ("make", "name", "args", "words"),
    [
        (image_only_pdf, "scan.pdf", (), "scan.pdf has no text layer"),
        (lambda: pdf_bytes([[ENGLISH]], password="pw"), "locked.pdf", (), "locked.pdf is password-protected"),
        (lambda: b"\xff\xfe", "bad.txt", (), "bad.txt is not valid UTF-8"),
        (lambda: b"x", "a.odt", (), "cannot read '.odt' files"),
        (lambda: b"x", "a.txt", ("also a text",), "give the text as TEXT or as --file PATH, not both"),
    ],
)
def test_bad_files_are_one_line_errors_with_exit_code_2(tmp_path, capsys, make, name, args, words):
    path = tmp_path / name
    path.write_bytes(make())
    assert main(["analyze", *args, "--file", str(path), "--model", "tiny:gpt2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_missing_file_and_no_text_at_all(tmp_path, capsys):
    assert main(["analyze", "--file", str(tmp_path / "nowhere.pdf"), "--model", "tiny:gpt2"]) == 2
    assert "cannot read --file" in capsys.readouterr().err
    assert main(["analyze", "--model", "tiny:gpt2"]) == 2
    assert "give the text as TEXT or as --file PATH" in capsys.readouterr().err
