"""One entry point for the lab's commands:

    python -m shared run ITERATION [--params cpu] [--only NB ...] [--redo]   the main job (make run)
    python -m shared plan ITERATION [--params gpu] [--gpu T4]   a GPU run's plan, nothing run
    python -m shared report ITERATION [--check]                 refresh (or check) a report
    python -m shared submit test.csv --strategy few_shot --out submission.csv
    python -m shared shards test.csv part1.csv part2.csv --out submission.csv

Each command is its module's main(): shared.run.runbook, shared.report.report,
shared.task.submit, shared.task.shards; `plan` is the runbook with --plan.
"""
import sys

COMMANDS = {"run": "shared.run.runbook", "plan": "shared.run.runbook", "report": "shared.report.report",
            "submit": "shared.task.submit", "shards": "shared.task.shards"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        given = f"'{argv[0]}' is not a command. " if argv and not argv[0].startswith("-") else ""
        print(f"{given}usage: python -m shared {{{', '.join(COMMANDS)}}} ...\n\n{__doc__}", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    command, rest = argv[0], argv[1:]
    if command == "plan":
        rest = [*rest, "--plan"]
    module = __import__(COMMANDS[command], fromlist=["main"])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
