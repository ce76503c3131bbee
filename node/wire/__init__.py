"""MongoDB wire protocol transport: MongoDB's own drivers (pymongo, mongosh) reach the node here.

``protocol`` decodes and encodes messages (OP_MSG, legacy OP_QUERY commands, OP_REPLY),
``crc32c`` verifies OP_MSG checksums, and ``server`` runs the TCP listener that hands every
decoded command to the same command dispatcher the gRPC transport uses.
"""
