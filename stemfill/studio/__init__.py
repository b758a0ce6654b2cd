"""`stemfill studio`: a local page to open a song, add a part, hear it and keep the take you like.

``server.create_app`` is the Starlette app over ``stemfill.api``; ``server.serve`` runs it with uvicorn.
The page (``static/``) is plain HTML, CSS and JavaScript, with alphaTab vendored for the tab view.
"""
