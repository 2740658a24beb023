"""Optimization-lab endpoints (trajectories, convexity, stationary points, constrained, linreg)."""

from fastapi import APIRouter

router = APIRouter(tags=["optimization lab"])
