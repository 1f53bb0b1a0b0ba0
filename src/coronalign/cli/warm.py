"""Warm start: the rules' commands forked from one process that has imported the package.

A rule's job is a new Python process: before it reads a byte it imports numpy, scipy,
astropy, asdf, stdatamodels (and matplotlib for the figures), about half a second a job,
which on a program of a few dozen short jobs is a third of the run. With warm start the
workflow starts one *server* when it starts (``onstart``, local runs only). The server
listens on a Unix socket in a private folder at once, then imports all that once and fills
the data models' caches (:mod:`coronalign.io.warm_up`); the workflow and the jobs' own
start go on meanwhile. Each job's script (a small Python process:
:func:`run_commands_warm`) connects, passes its standard streams (its log file as stderr),
its working folder and environment, and the commands; once the server is ready it accepts
the job and forks a child that runs them exactly as the job would have, and the job exits
with the child's exit status.

Nothing else changes for the job: one job per exposure, its own log, its exit status, the
same products bit for bit (the same code runs; only the imports are shared). A signal sent
to the job (Snakemake stopping it, Ctrl-C) is passed on to the child, which removes its
unfinished outputs as a job does; if the job dies without a word, the child is stopped.
A job that finds no server (not started yet, a cluster node, ``warm_start: false``) runs
its commands itself. The server ends with the workflow (``onsuccess``/``onerror``) or, at
the latest, within a second of it (its parent gone).

What Snakemake's ``benchmark:`` records for a job served this way is the job's small
process: its wall time is right, its memory and CPU are not the child's.

Python's :mod:`multiprocessing` forkserver would serve our own pools but not separate
processes started by Snakemake; this module is the part it lacks: handing over a caller's
streams, folder, environment and signals.
"""

import contextlib
import json
import os
import select
import signal
import socket
import struct
import sys
import tempfile

__all__ = ["preload", "run_commands_warm", "serve", "start_server", "stop_server"]

#: The environment variable naming the server's socket, set for the jobs by the workflow.
SOCKET_VARIABLE = "CORONALIGN_WARM_SOCKET"

_LENGTH = struct.Struct("!I")
#: What the server answers first, once it has a job's request: it will run the job.
_ACCEPTED = b"+"
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def preload():
    """Import what the rules' commands use and fill the data models' caches, so that the
    forked children need not (:func:`coronalign.steps.preload.prepare_for_jobs`)."""
    from coronalign.steps.preload import prepare_for_jobs

    prepare_for_jobs()


def serve(path, parent=None):
    """Serve the jobs' commands on the Unix socket ``path`` until told to stop.

    The server stops when ``path`` no longer exists or no longer is its socket, or when
    ``parent`` (a process id, by default the server's parent) is gone.

    Parameters
    ----------
    path : str
        Where to listen. The socket is created first, then the imports are made: the
        workflow goes on meanwhile, and a job that connects waits for them (its request is
        accepted once they are done). If they fail the server ends, and every waiting job,
        never accepted, runs its commands itself.
    parent : int, optional
        The process whose end stops the server.
    """
    parent = os.getppid() if parent is None else parent
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging = f"{path}.{os.getpid()}"
    listener.bind(staging)
    listener.listen(64)
    os.replace(staging, path)  # a job connects to a listening server or to none
    identity = os.stat(path).st_ino
    preload()
    listener.settimeout(0.5)
    try:
        while _still_wanted(path, identity, parent):
            _reap()
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            if os.fork() == 0:
                listener.close()
                try:
                    _serve_job(connection)
                finally:
                    os._exit(0)
            connection.close()
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == identity:
                os.unlink(path)


def _still_wanted(path, identity, parent):
    try:
        os.kill(parent, 0)
        return os.stat(path).st_ino == identity
    except OSError:
        return False


def _reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _receive(connection):
    """The request of a job: its standard streams, the rest (a JSON object), and the signals
    the job forwarded after it (bytes) while it waited to be accepted."""
    data, fds, _, _ = socket.recv_fds(connection, 1 << 16, 4)
    while len(data) < _LENGTH.size:
        data += _recv_some(connection)
    (length,) = _LENGTH.unpack_from(data)
    end = _LENGTH.size + length
    while len(data) < end:
        data += _recv_some(connection)
    return fds, json.loads(data[_LENGTH.size : end]), data[end:]


def _recv_some(connection):
    chunk = connection.recv(1 << 16)
    if not chunk:
        raise ConnectionError("the job left before its request was complete")
    return chunk


def _serve_job(connection):
    """In a child of the server: run one job's commands in a grandchild; report its status."""
    fds, request, signals = _receive(connection)
    request["server"] = os.getppid()
    try:
        connection.sendall(_ACCEPTED)  # from here on the job is this server's to run
    except OSError:  # the job is gone (killed while it waited): nothing to run
        for fd in fds:
            os.close(fd)
        connection.close()
        return
    child = os.fork()
    if child == 0:
        connection.close()
        os._exit(_run_request(fds, request))
    for fd in fds:
        os.close(fd)
    for signum in signals:  # sent while the job waited (Ctrl-C, Snakemake stopping it)
        os.kill(child, signum)
    status = _watch(connection, child)
    with contextlib.suppress(OSError):
        connection.sendall(f"{status}\n".encode())
    connection.close()


def _watch(connection, child):
    """Wait for ``child``, passing it the signals the job forwards; its exit status."""
    done = os.pidfd_open(child)
    watched = [connection, done]
    try:
        while True:
            ready, _, _ = select.select(watched, [], [])
            if done in ready:
                break
            message = connection.recv(16)
            if not message:  # the job is gone without a word (killed): stop its commands
                os.kill(child, signal.SIGTERM)
                watched = [done]
                continue
            for signum in message:
                os.kill(child, signum)
    finally:
        _, wait_status = os.waitpid(child, 0)
        os.close(done)
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells say


def _run_request(fds, request):
    """In the grandchild: become the job (streams, folder, environment), run its commands."""
    status = 1
    try:
        *streams, console = fds
        for target, fd in enumerate(streams):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for signum in _FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from coronalign.cli.jobs import run_calls, run_commands

        print(
            f"coronalign: warm start: process {os.getpid()}, forked from the workflow's "
            f"server (process {request['server']})",
            file=sys.stderr,
            flush=True,
        )
        status = run_commands(request["commands"])
        if not status and request["then"]:
            with (
                open(console, "w", encoding="utf-8", buffering=1) as stream,
                contextlib.redirect_stderr(stream),
            ):
                status = run_calls(request["then"])
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    except BaseException as error:  # the job must get a status and a word, whatever happened
        print(f"coronalign: warm start failed: {error!r}", file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):
                stream.flush()
    return status


def run_commands_warm(commands, stderr_fd, *, then=()):
    """Have the workflow's server run ``commands`` for this job; None if there is none.

    Parameters
    ----------
    commands : sequence of sequence of str
        The commands (see :func:`coronalign.cli.jobs.run_each_from_snakemake`).
    stderr_fd : int
        Where the commands' messages go (the job's log file).
    then : sequence of tuple, optional
        Calls after the commands, with this process's standard error (see
        :func:`coronalign.cli.jobs.run_each_from_snakemake`).

    Returns
    -------
    int or None
        The commands' exit status; None if no server takes the job (the caller runs them):
        none listens, or the one listening ended before it accepted the job.
    """
    path = os.environ.get(SOCKET_VARIABLE)
    if not path:
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
    except OSError:
        connection.close()
        return None
    request = {
        "commands": [[str(part) for part in command] for command in commands],
        "then": [list(call) for call in then],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
    }
    request = json.dumps(request).encode()
    previous = {}
    try:
        streams = [_open_or_null(0, os.O_RDONLY), _open_or_null(1, os.O_WRONLY), stderr_fd]
        streams.append(_open_or_null(2, os.O_WRONLY))  # the console, for the calls
        socket.send_fds(connection, [_LENGTH.pack(len(request)) + request], streams)
        for signum in _FORWARDED:
            previous[signum] = signal.signal(
                signum, lambda number, frame: connection.send(bytes([number]))
            )
        answer = b""
        while not answer.endswith(b"\n"):
            try:
                chunk = connection.recv(64)
            except ConnectionResetError:  # the server ended with the job still waiting
                chunk = b""
            if not chunk:
                break
            answer += chunk
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        connection.close()
    if not answer.startswith(_ACCEPTED):  # never accepted: nothing of the job has run
        os.write(stderr_fd, b"coronalign: warm start: the server ended before it took the job\n")
        return None
    answer = answer[len(_ACCEPTED) :]
    if not answer.endswith(b"\n"):
        os.write(stderr_fd, b"coronalign: error: the warm-start server ended before the job\n")
        return 1
    return int(answer)


def _open_or_null(fd, flags):
    """``fd`` if it is open, else a new descriptor of the null device."""
    try:
        os.fstat(fd)
    except OSError:
        return os.open(os.devnull, flags)
    return fd


def start_server(wait=30.0):
    """Start a server for this process's jobs; the socket's path (also set for the jobs).

    The server runs in a session of its own (Ctrl-C in the terminal reaches the jobs, not
    it) with this process's environment. It listens within a few hundredths of a second,
    before its imports (about a second and a half): the workflow goes on meanwhile, and the
    first jobs wait in the server's queue for them rather than import everything
    themselves at the same time.

    Parameters
    ----------
    wait : float, optional
        Seconds to wait for the server to listen; if it is not listening by then (or has
        ended: its messages are in ``server.log`` next to the socket) the jobs run their
        commands themselves.

    Returns
    -------
    str
        The socket's path, in a new folder only this user can enter.
    """
    import subprocess
    import time

    folder = tempfile.mkdtemp(prefix="coronalign-warm-")
    path = os.path.join(folder, "socket")
    with open(os.path.join(folder, "server.log"), "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "coronalign.cli.warm", path, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait
    while not os.path.exists(path) and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.environ[SOCKET_VARIABLE] = path
    return path


def stop_server(path):
    """Stop the server listening on ``path`` (its folder removed); nothing if there is none.

    Parameters
    ----------
    path : str or None
        What :func:`start_server` returned.
    """
    import shutil

    if not path:
        return
    os.environ.pop(SOCKET_VARIABLE, None)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


if __name__ == "__main__":
    for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")
    serve(sys.argv[1], int(sys.argv[2]))
