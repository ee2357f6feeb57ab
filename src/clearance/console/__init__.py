"""The web console at ``/console``: server-rendered pages (Starlette, Jinja2, htmx) for administrators.

Off unless ``console.enabled``.  ``routes.console_app`` builds the mounted
app; each page lives in its own module (``overview``, ``directives``,
``access``, ``audit_page``, ``assessments``), sessions and CSRF in
``sessions``, the page plumbing (templates, CSP, errors, role checks) in
``web``, and the live decision stream in ``stream``.  Every action calls the
same service functions and permission checks as the admin API, and its
change entries are written to the audit log under the administrator's name.
"""
