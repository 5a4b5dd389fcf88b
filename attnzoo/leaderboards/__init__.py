"""Rendering tidy result rows into markdown leaderboards."""

from attnzoo.leaderboards.markdown import render

__all__ = ["render"]
