"""`enhance-faces serve`: a page to browse and search the catalogue (Starlette, Jinja2, uvicorn).

`app` builds the application, `guard` its security (token, headers, file roots), `pages` reads what each page
shows. No script and no external resource on any page (a Content-Security-Policy forbids both).
"""
