# adde's Python code-interpreter driver. adde's `context` helper starts `python3 -c BOOT`,
# sends this file on fd 3 (a socket shared with no other process), and then one cell per line
# of JSON; the driver answers each cell with one line of JSON on fd 3. The cell's stdout and
# stderr are the process's own fds 1 and 2. Python 3.8+, standard library only; IPython's
# formatters are used when the image has IPython. Names start with _adde so that a cell's
# globals stay the cell's own.
import ast as _adde_ast
import base64 as _adde_base64
import builtins as _adde_builtins
import io as _adde_io
import json as _adde_json
import linecache as _adde_linecache
import os as _adde_os
import signal as _adde_signal
import sys as _adde_sys
import traceback as _adde_traceback
import types as _adde_types


def _adde_protect():
    """Makes this process non-dumpable, as adde's own processes are: no other process of the
    environment can then open its fds through /proc, read its memory or ptrace it."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except Exception:
        return False


_ADDE_PROTECTED = _adde_protect()
_ADDE_CONTROL = 3
_adde_os.set_inheritable(_ADDE_CONTROL, False)
# Matplotlib draws into memory; figures come back as images.
_adde_os.environ["MPLBACKEND"] = "Agg"

_ADDE_TEXT_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"),
)
_ADDE_EXTENSIONS = {
    "text/html": "html",
    "text/markdown": "md",
    "text/latex": "tex",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpg",
    "application/json": "json",
}


def _adde_ipython_formatter():
    try:
        from IPython.core.formatters import DisplayFormatter

        return DisplayFormatter()
    except Exception:
        return None


_adde_formatter = None
_adde_formatter_loaded = False


class _AddeCell:
    """What one cell displays, bounded."""

    def __init__(self, request):
        self.count = request["execution_count"]
        self.svg = bool(request.get("svg"))
        self.output_dir = request.get("output_dir")
        self.max_output = int(request["max_output_bytes"])
        self.budget = int(request["max_results_bytes"])
        self.results = []
        self.truncated = False

    def add(self, bundle, kind):
        data, files, omitted = {}, {}, {}
        for mime, value in bundle.items():
            text = value if isinstance(value, str) else _adde_json.dumps(value)
            size = len(text.encode("utf-8", "replace"))
            if self.output_dir and mime in _ADDE_EXTENSIONS and mime != "text/plain":
                files[mime] = self.write_file(mime, value)
                continue
            if size > self.max_output or size > self.budget:
                if mime == "text/plain" and self.budget > 64:
                    keep = max(0, min(self.max_output, self.budget) - 64)
                    data[mime] = text[:keep] + "\n[adde: output truncated, %d bytes in all]" % size
                    self.budget -= keep + 64
                else:
                    omitted[mime] = size
                self.truncated = True
                continue
            data[mime] = value
            self.budget -= size
        result = {"kind": kind, "data": data}
        if files:
            result["files"] = files
        if omitted:
            result["omitted"] = omitted
        self.results.append(result)

    def write_file(self, mime, value):
        _adde_os.makedirs(self.output_dir, exist_ok=True)
        name = "cell%d-%d.%s" % (self.count, len(self.results) + 1, _ADDE_EXTENSIONS[mime])
        path = _adde_os.path.join(self.output_dir, name)
        if mime in ("image/png", "image/jpeg"):
            raw = _adde_base64.b64decode(value)
        else:
            raw = (value if isinstance(value, str) else _adde_json.dumps(value)).encode("utf-8")
        with open(path, "wb") as f:
            f.write(raw)
        return path


_adde_cell = None


def _adde_bundle(obj):
    """The MIME bundle of an object, as IPython would show it."""
    global _adde_formatter, _adde_formatter_loaded
    if not _adde_formatter_loaded:
        _adde_formatter_loaded = True
        _adde_formatter = _adde_ipython_formatter()
    if _adde_formatter is not None:
        try:
            data, _ = _adde_formatter.format(obj)
            return {k: v for k, v in data.items() if isinstance(v, (str, dict, list))}
        except Exception:
            pass
    bundle = {}
    if not isinstance(obj, type):
        mimebundle = getattr(obj, "_repr_mimebundle_", None)
        if callable(mimebundle):
            try:
                got = mimebundle(include=None, exclude=None)
                if isinstance(got, tuple):
                    got = got[0]
                if isinstance(got, dict):
                    bundle.update(got)
            except Exception:
                pass
        for mime, method in _ADDE_TEXT_METHODS:
            if mime in bundle:
                continue
            render = getattr(obj, method, None)
            if not callable(render):
                continue
            try:
                value = render()
            except Exception:
                continue
            if isinstance(value, tuple):
                value = value[0]
            if value is None:
                continue
            if isinstance(value, bytes):
                value = _adde_base64.b64encode(value).decode("ascii")
            bundle[mime] = value
    try:
        bundle["text/plain"] = repr(obj)
    except Exception as e:
        bundle["text/plain"] = "<unrepresentable object: %s>" % type(e).__name__
    return bundle


def display(*objs, **_ignored):
    """Shows each object as a rich output of the running cell."""
    for obj in objs:
        if _adde_cell is not None:
            _adde_flush_streams()
            _adde_cell.add(_adde_bundle(obj), "display_data")


def _adde_flush_streams():
    for stream in (_adde_sys.stdout, _adde_sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _adde_show_figures(*_args, **_kwargs):
    """plt.show(), and the end of every cell: every open figure as an image, then closed."""
    pyplot = _adde_sys.modules.get("matplotlib.pyplot")
    if pyplot is None or _adde_cell is None:
        return
    for number in pyplot.get_fignums():
        figure = pyplot.figure(number)
        bundle = {"text/plain": repr(figure)}
        formats = [("image/png", "png")] + ([("image/svg+xml", "svg")] if _adde_cell.svg else [])
        for mime, fmt in formats:
            buffer = _adde_io.BytesIO()
            figure.savefig(buffer, format=fmt, bbox_inches="tight")
            raw = buffer.getvalue()
            bundle[mime] = raw.decode("utf-8") if fmt == "svg" else _adde_base64.b64encode(raw).decode("ascii")
        _adde_cell.add(bundle, "display_data")
    pyplot.close("all")


class _AddePyplotHook:
    """Replaces pyplot.show as pyplot is first imported, before a cell can call it."""

    def find_spec(self, name, path=None, target=None):
        if name != "matplotlib.pyplot":
            return None
        import importlib.util

        _adde_sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            _adde_sys.meta_path.insert(0, self)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        load = loader.exec_module

        def exec_module(module):
            load(module)
            module.show = _adde_show_figures

        loader.exec_module = exec_module
        return spec


_adde_sys.meta_path.insert(0, _AddePyplotHook())


def _adde_error(error, skip_frames):
    tb = error.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    if isinstance(error, SyntaxError):
        lines = _adde_traceback.format_exception_only(type(error), error)
    else:
        lines = _adde_traceback.format_exception(type(error), error, tb)
    return {"name": type(error).__name__, "value": str(error), "traceback": "".join(lines)}


def _adde_run(request, namespace):
    global _adde_cell
    _adde_cell = cell = _AddeCell(request)
    source = request["code"]
    filename = "<cell-%d>" % cell.count
    _adde_linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    error = None
    try:
        _adde_signal.signal(_adde_signal.SIGINT, _adde_signal.default_int_handler)
        try:
            tree = _adde_ast.parse(source, filename, "exec")
            last = None
            if tree.body and isinstance(tree.body[-1], _adde_ast.Expr):
                last = _adde_ast.Expression(tree.body.pop().value)
            exec(compile(tree, filename, "exec"), namespace)
            if last is not None:
                value = eval(compile(last, filename, "eval"), namespace)
                if value is not None:
                    namespace["_"] = value
                    _adde_flush_streams()
                    cell.add(_adde_bundle(value), "execute_result")
            _adde_show_figures()
        finally:
            _adde_signal.signal(_adde_signal.SIGINT, _adde_signal.SIG_IGN)
    except SyntaxError as e:
        error = _adde_error(e, 0)
    except BaseException as e:  # noqa: B902 - a cell's SystemExit and KeyboardInterrupt too
        error = _adde_error(e, 1)
    _adde_flush_streams()
    _adde_cell = None
    return {"id": request["id"], "results": cell.results, "error": error, "results_truncated": cell.truncated}


def _adde_send(message):
    data = (_adde_json.dumps(message) + "\n").encode("utf-8")
    while data:
        data = data[_adde_os.write(_ADDE_CONTROL, data) :]


def _adde_main():
    _adde_signal.signal(_adde_signal.SIGINT, _adde_signal.SIG_IGN)
    main = _adde_types.ModuleType("__main__")
    main.__dict__["__builtins__"] = _adde_builtins
    _adde_sys.modules["__main__"] = main
    _adde_builtins.display = display
    _adde_sys.argv = [""]
    version = "Python %d.%d.%d" % _adde_sys.version_info[:3]
    _adde_send({"ready": True, "interpreter": version, "protected": _ADDE_PROTECTED})
    control = _adde_io.open(_ADDE_CONTROL, "rb", closefd=False)
    while True:
        line = control.readline()
        if not line:
            return
        try:
            request = _adde_json.loads(line)
        except ValueError:
            continue
        _adde_send(_adde_run(request, main.__dict__))


_adde_main()
