"""HTTP(S) servers tests run on loopback: `serving(handler_class)` runs a handler in a thread on a free port."""

import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def serving(handler_class, host="127.0.0.1", tls=None, **attributes):
    """Run `handler_class` on `host` (a loopback address; a free port) in a thread, over TLS with the server-side
    ssl.SSLContext `tls` if given; yields the server (server.url)."""
    server = _Server((host, 0), handler_class)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    for name, value in attributes.items():
        setattr(server, name, value)
    server.url = f"{'https' if tls else 'http'}://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
