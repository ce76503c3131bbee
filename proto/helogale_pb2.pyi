from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CommandRequest(_message.Message):
    __slots__ = ("db", "command")
    DB_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    db: str
    command: bytes
    def __init__(self, db: _Optional[str] = ..., command: _Optional[bytes] = ...) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("reply",)
    REPLY_FIELD_NUMBER: _ClassVar[int]
    reply: bytes
    def __init__(self, reply: _Optional[bytes] = ...) -> None: ...

class StreamCommand(_message.Message):
    __slots__ = ("request_id", "db", "command")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DB_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    db: str
    command: bytes
    def __init__(self, request_id: _Optional[int] = ..., db: _Optional[str] = ..., command: _Optional[bytes] = ...) -> None: ...

class CommandBatch(_message.Message):
    __slots__ = ("commands",)
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[StreamCommand]
    def __init__(self, commands: _Optional[_Iterable[_Union[StreamCommand, _Mapping]]] = ...) -> None: ...

class StreamReply(_message.Message):
    __slots__ = ("request_id", "reply")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    reply: bytes
    def __init__(self, request_id: _Optional[int] = ..., reply: _Optional[bytes] = ...) -> None: ...

class ReplyBatch(_message.Message):
    __slots__ = ("replies",)
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    replies: _containers.RepeatedCompositeFieldContainer[StreamReply]
    def __init__(self, replies: _Optional[_Iterable[_Union[StreamReply, _Mapping]]] = ...) -> None: ...
