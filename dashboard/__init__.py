"""``mailfleet dashboard``: the fleet in a browser (Starlette, Jinja2, htmx, uvicorn).

It reads the same sources as the CLI tools through their own code (``producer/ops``,
``worker/limits/explain.py``), so a page and a command never disagree.
"""
