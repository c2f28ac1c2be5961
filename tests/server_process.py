"""Real servers for the tests: the project's one launcher (``coldstart.processes``), started as
``python -m MODULE --host 127.0.0.1 --port <free> [--config FILE]`` with the test's own settings only."""

from __future__ import annotations

from pathlib import Path

from coldstart.processes import REPO, module_command, server_env
from coldstart.processes import ServerProcess as Launched

__all__ = ["REPO", "ServerProcess"]


class ServerProcess(Launched):
    """A server on ``config`` and ``env`` (nothing inherited from the shell's server settings)."""

    def __init__(self, module: str, log_path: Path, config: Path | None = None,
                 env: dict[str, str] | None = None, open_files: int | None = None) -> None:
        super().__init__(module_command(module, config), log_path, env=server_env(env), open_files=open_files,
                         client_timeout=120)
