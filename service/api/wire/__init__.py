"""The wire models, grouped by resource: what clients send and receive. They import neither torch nor SQLAlchemy,
so the thin client (service/client) shares them."""
