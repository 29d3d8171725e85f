"""Serve Keystone's WSGI app on 127.0.0.1:PORT (threaded wsgiref): serve.py CONFIG_FILE PORT."""

from __future__ import annotations

import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keystone.log has the requests
        pass


def main() -> None:
    config, port = sys.argv[1], int(sys.argv[2])
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = config
    sys.argv[1:] = []  # oslo.config parses the command line
    from keystone.server.wsgi import initialize_public_application

    app = initialize_public_application()
    make_server("127.0.0.1", port, app, server_class=_Server, handler_class=_Handler).serve_forever()


if __name__ == "__main__":
    main()
