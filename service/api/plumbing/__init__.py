"""The HTTP machinery every router relies on: dependencies, auth, limits, headers, error handlers, OpenAPI, /docs."""
