"""``python -m ml_framework.plugins.bentoml.serve_main serve ...``: `bentoml serve`, able to adopt a listening
socket handed to it instead of binding its port.

A service restarted with new settings starts its new process with the *same* listening socket as the old
one (``ML_LISTEN_FD``, taken from the old process by `ml`, :func:`..process.take_listener`): connections
queue on that socket throughout, the new workers accept them once they are ready, and the old process
stops after — a restart refuses and resets no connection. Everything else is BentoML's own CLI."""

from __future__ import annotations

import os
import sys


def _adopt_listener() -> None:
    fd, port = os.environ.pop("ML_LISTEN_FD", ""), os.environ.pop("ML_LISTEN_PORT", "")
    if not fd or not port:
        return
    from circus.sockets import CircusSocket

    original = CircusSocket.bind_and_listen
    pending = {"fd": int(fd)}

    def bind_and_listen(self):
        if pending["fd"] is not None and not self.is_unix and int(self.port) == int(port):
            os.dup2(pending["fd"], self.fileno())  # this socket object now is the listening socket handed over
            os.close(pending["fd"])
            pending["fd"] = None
            self.setblocking(bool(self.blocking))
            return None
        return original(self)

    CircusSocket.bind_and_listen = bind_and_listen


def main() -> None:
    _adopt_listener()
    from bentoml_cli.cli import cli

    sys.argv = ["bentoml", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
