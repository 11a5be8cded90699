"""Run a script's command line once per case, each in a process forked from one interpreter that imported it.

Every case is a real process with its own exit status, stdout and stderr (file descriptors 1 and 2), as a user
sees them, while the interpreter and the libraries start only once: seven runs of run_qa.py cost about one.

    python tests/forked_runs.py SCRIPT CASES.json   # CASES: [{"argv": [...], "env": {...}}]; prints JSON results
"""

import json
import os
import runpy
import sys
import tempfile
import traceback
from pathlib import Path


def run_case(script: str, argv: list[str], env: dict[str, str]) -> dict:
    """Return {"status", "stdout", "stderr"} of `python SCRIPT *argv` run in a forked child."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.dup2(stdout.fileno(), 1)
            os.dup2(stderr.fileno(), 2)
            os.environ.update(env)
            sys.argv = [script, *argv]
            os._exit(run_as_main(script))
        _, wait_status = os.waitpid(pid, 0)
        stdout.seek(0)
        stderr.seek(0)
        return {"status": os.waitstatus_to_exitcode(wait_status), "stdout": stdout.read().decode(errors="replace"),
                "stderr": stderr.read().decode(errors="replace")}


def run_as_main(script: str) -> int:
    """Run `script` as __main__ and return the exit status the interpreter would give."""
    try:
        runpy.run_path(script, run_name="__main__")
        status = 0
    except SystemExit as exit_request:
        status = exit_request.code if isinstance(exit_request.code, int) else 0 if exit_request.code is None else 1
        if not isinstance(exit_request.code, int | None):
            print(exit_request.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001  (as the interpreter does: print the traceback, status 1)
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def main() -> None:
    script, cases_file = sys.argv[1], sys.argv[2]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="preloaded")  # imports the script's libraries once, before forking
    cases = json.loads(Path(cases_file).read_text(encoding="utf-8"))
    print(json.dumps([run_case(script, case["argv"], case.get("env", {})) for case in cases]))


if __name__ == "__main__":
    main()
