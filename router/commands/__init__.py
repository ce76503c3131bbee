"""The router's command handlers, one module per family (``query``, ``writes``, ``catalog``,
``admin``) and their table (``table.ROUTER_COMMANDS``), served by the node's dispatcher."""
