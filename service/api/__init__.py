"""The HTTP edge, the only package that knows about HTTP: routers/ (one per resource), plumbing/ (dependencies,
security, limits, headers, handlers, OpenAPI, docs), wire/ (the request and response models, by resource)."""
