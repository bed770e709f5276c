"""preflight.py MODULE HEALTH_PATH [GUNICORN OPTION…] — load the release's app as Gunicorn would
and call it once (HEALTH_PATH "-": load only, no request).

Run by the agent (fdeploy_agent/preflight.py) as the app user in the slots' sandbox, from the
release folder, with the venv's Python. First the options of the slots' unit go through the
installed Gunicorn's own parser (an option this version lacks fails here, not at the switch);
then Gunicorn's own loader (gunicorn.util.import_app: module:name, module:factory(), factory with
literal args), then one GET HEALTH_PATH through the WSGI interface.
Exit status: 0 loads (and the health path is not a 4xx), 1 does not load (traceback on stderr),
2 the health path answers 4xx, 3 the target is a function that is not a WSGI app (a factory
written without its parentheses), 4 the installed Gunicorn refuses the unit's options.
"""
import inspect
import io
import os
import sys
import traceback
from wsgiref.util import setup_testing_defaults

target, health_path, options = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, os.getcwd())  # Gunicorn imports from its working directory, the release
if options:
    try:
        import gunicorn
        from gunicorn.config import Config

        parser = Config().parser()
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    said = io.StringIO()
    saved, sys.stderr = sys.stderr, said
    try:
        parser.parse_args(options + [target])
        refused = ""
    except SystemExit:
        refused = said.getvalue().strip().splitlines()[-1] if said.getvalue().strip() else "refused"
    finally:
        sys.stderr = saved
    if refused:
        print(f"the release's Gunicorn {gunicorn.__version__} refuses the options the slots run it with ({refused}); "
              f"require a newer gunicorn in the app's requirements.txt", file=sys.stderr)
        sys.exit(4)
try:
    from gunicorn.util import import_app

    app = import_app(target)
except BaseException:
    traceback.print_exc()
    sys.exit(1)

if inspect.isfunction(app):
    try:
        inspect.signature(app).bind({}, lambda *a: None)
    except TypeError:
        module, _, name = target.partition(":")
        print(f"{target} is a function that is not a WSGI app (it does not take environ, start_response); "
              f"if it is an app factory, set appModule to {module}:{name.split('(')[0]}() so that Gunicorn calls it",
              file=sys.stderr)
        sys.exit(3)

if health_path == "-":
    print(f"loads {target}")
    sys.exit(0)

environ = {"PATH_INFO": health_path, "REQUEST_METHOD": "GET", "HTTP_HOST": "localhost", "wsgi.errors": sys.stderr,
           "wsgi.input": io.BytesIO(b"")}
setup_testing_defaults(environ)
status = []
try:
    body = app(environ, lambda s, h, e=None: status.append(s) or (lambda b: None))
    try:
        for _ in body:
            pass
    finally:
        getattr(body, "close", lambda: None)()
except BaseException:
    traceback.print_exc()  # the slot's health check decides: a 5xx may be transient
    print(f"preflight: GET {health_path} raised (see above); the slot's health check decides")
    sys.exit(0)
code = status[0].split()[0] if status else "000"
if code.startswith("4"):
    print(f"HTTP {code}", file=sys.stderr)
    sys.exit(2)
print(f"GET {health_path}: HTTP {code}")
