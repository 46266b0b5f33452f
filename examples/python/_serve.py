"""Runs a weft.Server in a child process for the examples; returns its ipc address."""

import os


def serve_in_child(server_id, register):
    """Forks; the child hosts what `register(server)` registers until it is killed. Returns
    (pid, address) once the child is ready."""
    import weft
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        import signal
        server = weft.Server(server_id)
        register(server)
        server.start()

        def stop_serving(*_):
            server.shutdown()
            os._exit(0)

        signal.signal(signal.SIGTERM, stop_serving)
        os.write(w, b"1")
        import time
        while True:
            time.sleep(1)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    return pid, f"ipc://{server_id}"


def stop(pid):
    import signal
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
