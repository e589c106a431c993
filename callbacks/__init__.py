"""Thin glue between the pages and grids_core: one module per page/feature."""

from __future__ import annotations

from dash import Dash

from callbacks.state import AppState


def register_all(app: Dash, state: AppState, manager, defaults: tuple[str | None, str | None]) -> None:
    """Register every callback and route of the app."""
    from callbacks import browser, igv, jobs, mnist, navigation, runs

    navigation.register(app, state, defaults)
    board = jobs.job_board(state)
    jobs.register(app, state, manager, board)
    browser.register(app, state)
    runs.register(app, state, board)
    igv.register(app, state)
    mnist.register(app, state)
