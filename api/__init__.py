"""The product surface: FastAPI app, routers, pages, metrics and the ``levqor`` CLI."""
