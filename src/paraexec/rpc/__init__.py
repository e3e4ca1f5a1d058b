"""The node's API: JSON-RPC 2.0 over HTTP, WebSocket subscriptions, Prometheus metrics, dashboard.

``server.create_app(node)`` builds the ASGI app; ``server.serve`` runs node and API together.
"""
