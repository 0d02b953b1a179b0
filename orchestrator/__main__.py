"""The program (`python -m orchestrator`, and the `orchestrate` script's `run`).

`--version` is answered, and the plain shapes of `status`, `validate` and `list` are run
(face/quick.py), before click or any command module is imported; everything else goes to the
click group (orchestrator/cli/)."""

import sys

from orchestrator.interrupts import term_as_interrupt


def run() -> None:
    term_as_interrupt()  # before the imports: a SIGTERM from now on exits 130
    if sys.argv[1:] == ["--version"]:  # what click's version option prints, without click
        from orchestrator import __version__

        print(f"orchestrate, version {__version__}")
        return
    from orchestrator.face.quick import run_quick

    if (code := run_quick(sys.argv[1:])) is not None:
        sys.exit(code)
    from orchestrator.cli import main

    main()


if __name__ == "__main__":
    run()
