"""Users, roles, SCRAM-SHA-256 authentication and the authorization check (docs/security.md).

``scram``: salted keys and both sides of the SCRAM conversation; ``roles``: the actions every
command declares and the built-in roles; ``authz``: the per-connection :class:`AuthSession`
and THE authorization check the dispatcher runs before any handler; ``users``: the user
management and authentication command handlers.
"""
