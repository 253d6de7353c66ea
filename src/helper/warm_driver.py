# adde's warm Python driver, run as `python3 -c DRIVER` by a spare supervisor (warm.rs) before
# any run asks for it. It waits on fd 3 for "ARGV0\0PATH" (then EOF), and runs PATH as
# `ARGV0 PATH` would: in the __main__ module the interpreter made, with sys.argv, sys.path[0],
# __file__ and __loader__ set as CPython sets them for a script. It imports nothing that
# `python3 file.py` does not (os and sys are loaded by site), and leaves no name behind.
# When a folder on the import path changed while it waited (install_dependencies added a
# package, a .pth file was written), this interpreter's import state is stale: it becomes
# `ARGV0 PATH` itself (exec), as a cold run would start.
import os, sys


def _adde_uncaught(e, code, os=os, sys=sys):
    # What CPython prints for an uncaught exception: the traceback from the program's own
    # frame on (the driver's frames cut off), through sys.excepthook; then exit status 1, or
    # death by SIGINT for a KeyboardInterrupt, after the same shutdown.
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next
    e.__traceback__ = tb
    sys.excepthook(type(e), e, tb)
    if not isinstance(e, KeyboardInterrupt):
        raise SystemExit(1) from None
    import atexit, signal

    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def _adde_warm(os=os, sys=sys):
    def import_path():
        # sys.path[0] ('' under -c) is the script's folder by the time the run starts.
        seen = []
        for entry in sys.path[1:]:
            try:
                st = os.stat(entry)
                seen.append((entry, st.st_ino, st.st_mtime_ns))
            except OSError:
                seen.append((entry, None, None))
        return seen

    started = import_path()
    got = b""
    while True:
        chunk = os.read(3, 65536)
        if not chunk:
            break
        got += chunk
    os.close(3)
    if not got:
        os._exit(0)
    argv0, path = (os.fsdecode(part) for part in got.split(b"\0", 1))
    if import_path() != started:
        os.execvp(argv0, [argv0, path])
    main = sys.modules["__main__"]
    uncaught = _adde_uncaught
    for name in ("_adde_warm", "_adde_uncaught", "os", "sys"):
        main.__dict__.pop(name, None)
    sys.argv[:] = [path]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv[:] = [argv0, path]
    # CPython: the real path of the script's folder; __file__: the path made absolute as is.
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    file = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    main.__file__ = file
    main.__cached__ = None
    main.__loader__ = sys.modules["_frozen_importlib_external"].SourceFileLoader(
        "__main__", file
    )
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), file, "exec", dont_inherit=True)
    except BaseException as e:
        uncaught(e, None)
    try:
        exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:
        uncaught(e, code)


_adde_warm()
