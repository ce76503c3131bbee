"""The command layer: every MongoDB command the node answers, one module per command family.

``dispatcher`` holds the single command table and :class:`~node.commands.dispatcher.Dispatcher`,
the one entry point every transport (gRPC today, the MongoDB wire protocol) calls with a database
name, a command document and a :class:`~node.commands.context.RequestContext`. ``crud``,
``query``, ``indexes``, ``catalog`` and ``admin`` hold the handlers; ``cursors`` is the server
cursor registry; ``member`` is the narrow interface to the replica-set member (primary checks,
proposing writes, topology) that the handlers use.
"""
