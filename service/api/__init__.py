"""HTTP routers, one per resource. Only this package knows about HTTP."""
