"""The app's routes as one flat list, and the methods each path allows (for 405 answers' `Allow`)."""

import fastapi.routing
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route


def all_routes(app: FastAPI) -> list[BaseRoute]:
    """Every route, those of included routers too (FastAPI 0.165 includes routers lazily)."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:
        return list(app.routes)
    return [context.original_route for context in iter_contexts(app.routes)]


def api_routes(app: FastAPI) -> list[APIRoute]:
    """The FastAPI operations."""
    return [route for route in all_routes(app) if isinstance(route, APIRoute)]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods some route answers at `path` (HEAD wherever GET is), sorted."""
    methods: set[str] = set()
    for route in all_routes(app):
        if isinstance(route, Route) and route.methods and route.path_regex.fullmatch(path):
            methods |= route.methods
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
