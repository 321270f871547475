"""``manage.py run_model_server``: Kodify's vLLM launcher, from Kodify's own image.

The same code as ``python3 model_server.py`` in the model-server image (see
``docker/model-server/model_server.py`` for the variables): it checks the guide's variables
(``GPUUTIL``, ``DTYPE``, ``EAGER``, ``ADDITIONAL_ARGS`` …), then replaces this process
with vLLM, or with ``--print`` shows the command line.  Bad values: one sentence each on
stderr and exit status 2, as the script does.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

# The launcher lives with the model-server image, which copies it alone into vLLM's image,
# so it is no module of Kodify's packages and is loaded from its file.
LAUNCHER = Path(settings.BASE_DIR) / "docker" / "model-server" / "model_server.py"
# The name it has in its own folder, which the launcher puts on the path for its sibling.
LAUNCHER_MODULE = "model_server"


def load_launcher() -> ModuleType:
    """The launcher script as a module, loaded once per process (tests patch that one)."""
    if (loaded := sys.modules.get(LAUNCHER_MODULE)) is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(LAUNCHER_MODULE, LAUNCHER)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the model server's launcher from {LAUNCHER}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up while being made.
    sys.modules[LAUNCHER_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[LAUNCHER_MODULE]
        raise
    return module


launcher = load_launcher()


class Command(BaseCommand):
    help = launcher.DESCRIPTION
    # The launcher needs none of Kodify's settings to be right (it may run beside vLLM
    # with nothing but the model server's variables), so Kodify's checks must not stop it.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", launcher.help_epilog())
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        launcher.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        status = launcher.run(
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
