from orchestrator.interrupts import term_as_interrupt

term_as_interrupt()  # before the imports: a SIGTERM from now on exits 130

from orchestrator.cli import main  # noqa: E402

main()
