"""The resource routers: one module per resource, each a thin layer over one service function per route."""
