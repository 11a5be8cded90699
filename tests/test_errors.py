"""`run_command`: user errors become one line and exit status 2; bugs, --debug and QA_TRACEBACK keep tracebacks."""

import pytest

from cli_errors import UserError, run_command


def fail_with(error):
    def command():
        raise error

    return command


def test_user_error_prints_one_line_on_stderr_and_returns_2(capsys, monkeypatch):
    monkeypatch.delenv("QA_TRACEBACK", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    status = run_command(fail_with(UserError("data.json: record 3: field 'question'\n  is missing")))
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err == "error: data.json: record 3: field 'question' is missing\n"
    assert captured.out == ""


def test_listed_library_errors_count_as_user_errors(capsys, monkeypatch):
    monkeypatch.delenv("QA_TRACEBACK", raising=False)
    assert run_command(fail_with(FileNotFoundError("no such file")), user_errors=(UserError, OSError)) == 2
    assert capsys.readouterr().err == "error: no such file\n"


def test_a_bug_keeps_its_traceback():
    with pytest.raises(KeyError):
        run_command(fail_with(KeyError("a bug")))


def test_debug_flag_and_environment_variable_show_the_traceback_of_user_errors(monkeypatch):
    monkeypatch.delenv("QA_TRACEBACK", raising=False)
    with pytest.raises(UserError):
        run_command(fail_with(UserError("bad flag")), debug=True)
    monkeypatch.setenv("QA_TRACEBACK", "1")
    with pytest.raises(UserError):
        run_command(fail_with(UserError("bad flag")))
    monkeypatch.setenv("QA_TRACEBACK", "0")
    assert run_command(fail_with(UserError("bad flag"))) == 2


def test_only_the_main_process_prints_but_every_process_fails(capsys, monkeypatch):
    monkeypatch.delenv("QA_TRACEBACK", raising=False)
    monkeypatch.setenv("RANK", "1")
    assert run_command(fail_with(UserError("bad data"))) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert run_command(fail_with(UserError("bad data"))) == 2
    assert capsys.readouterr().err == "error: bad data\n"


def test_success_returns_0():
    assert run_command(lambda: None) == 0
