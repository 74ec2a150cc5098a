"""The relayer's status page: a static HTML page plus the JSON snapshot it polls.

Served by the relayer's HTTP server (`metrics_listen`) next to `/metrics`: `/` is `page.html`
(inline CSS and vanilla JS, no build step, no external resources) and `/api/status` is
`relay.status.api.build_status(relayer)` as JSON; the page fetches it every 2 s.
"""

from relay.status.api import build_status, load_status_page

__all__ = ["build_status", "load_status_page"]
