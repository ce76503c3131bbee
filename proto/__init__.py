"""gRPC/protobuf contracts between client, router and nodes.

Documents travel as BSON bytes inside protobuf messages. The ``.proto`` sources live here with
their generated ``*_pb2`` modules.
"""
