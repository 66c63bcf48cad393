"""An interactive local page to drag probabilities and logits (``crossent explore``).

Six panels (the pop quiz, binary cross-entropy, logits to softmax to gradient, the
double-softmax bug, label smoothing / temperature / focal gamma, and the forward/backward
pipeline) draw what :mod:`crossent` computes through a small JSON API under ``/api/``. The page
is plain HTML, CSS and JavaScript shipped in ``crossent/explore/static``; it loads nothing from
the network. The server (:mod:`crossent.explore.server`: Starlette on uvicorn, the ``explore``
extra) listens on 127.0.0.1 only; the command is :mod:`crossent.apps.explore`.

Nothing heavy is imported here: starlette and uvicorn are imported with the server.
"""
