"""preflight.py MODULE HEALTH_PATH — load the release's app as Gunicorn would and call it once.

Run by activate.sh as the app user in the slots' sandbox, from the release folder, with the venv's
Python. Uses Gunicorn's own loader (gunicorn.util.import_app: module:name, module:factory(),
factory with literal args), then one GET HEALTH_PATH through the WSGI interface.
Exit status: 0 loads (and the health path is not a 4xx), 1 does not load (traceback on stderr),
2 the health path answers 4xx, 3 the target is a function that is not a WSGI app (a factory
written without its parentheses).
"""
import inspect
import io
import os
import sys
import traceback
from wsgiref.util import setup_testing_defaults

target, health_path = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.getcwd())  # Gunicorn imports from its working directory, the release
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
