"""``manage.py run_model_server``: Kodify's vLLM launcher, from Kodify's own image.

The same code as ``python3 model_server.py`` in the model-server image (see
``kodify_site/model_server.py`` for the variables): it checks the guide's variables
(``GPUUTIL``, ``DTYPE``, ``EAGER``, ``ADDITIONAL_ARGS`` …), then replaces this process
with vLLM, or with ``--print`` shows the command line.  Bad values: one sentence each on
stderr and exit status 2, as the script does.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from kodify_site import model_server


class Command(BaseCommand):
    help = model_server.DESCRIPTION
    # The launcher needs none of Kodify's settings to be right (it may run beside vLLM
    # with nothing but the model server's variables), so Kodify's checks must not stop it.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", model_server.help_epilog())
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        model_server.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        status = model_server.run(
            print_only=options["print_only"],
            check_model=options["check_model"],
            entrypoint=options["entrypoint"],
            python=options["python"],
            vllm_args=options["vllm_args"],
            stdout=self.stdout,
            stderr=self.stderr,
        )
        if status:
            # SystemExit, not CommandError: the same bare sentences and status as the script.
            raise SystemExit(status)
