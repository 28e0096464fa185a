"""The ``stride`` command: every Stride and Django management command, from any directory.

stride demo            load the demo clinics, people and patients
stride serve           run the web application
stride synth -n 1000   add synthetic patients
stride help            list every command
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stride.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv if argv is None else argv)
    args[0] = "stride"
    if len(args) == 1:
        args.append("help")
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
