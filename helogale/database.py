"""``Database``: collections by attribute or item, collection management and ``command``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson.codec_options import CodecOptions

from helogale.client_common import HasOptions
from helogale.collection import Collection
from helogale.cursor import CommandCursor
from helogale.errors import InvalidName, check_reply
from helogale.read_concern import ReadConcern
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.write_concern import WriteConcern

NAMESPACE_NOT_FOUND = 26


def check_database_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError("name must be an instance of str")
    if not name:
        raise InvalidName("database name cannot be the empty string")
    for char in " .$/\\\x00\"":
        if char in name:
            raise InvalidName(f"database names cannot contain the character {char!r}")


class DatabaseBase(HasOptions):
    """A database of one client: its options and the commands it builds, without I/O; cheap
    to create, holds no state but options. :class:`Database` runs them with the threaded
    client, ``helogale.asyncio.AsyncDatabase`` with the asyncio one."""

    _collection_class: Any

    def __init__(
        self,
        client: Any,
        name: str,
        codec_options: CodecOptions | None = None,
        read_preference: ServerMode | None = None,
        write_concern: WriteConcern | None = None,
        read_concern: ReadConcern | None = None,
    ) -> None:
        check_database_name(name)
        self._client = client
        self._name = name
        self._codec_options = codec_options or client.codec_options
        self._read_preference = read_preference or client.read_preference
        self._write_concern = write_concern or client.write_concern
        self._read_concern = read_concern or client.read_concern

    @property
    def name(self) -> str:
        return self._name

    @property
    def client(self) -> Any:
        return self._client

    @property
    def connection(self) -> Any:
        """The classic name of :attr:`client` (``assert dbh.connection == c``)."""
        return self._client

    def with_options(
        self,
        codec_options: CodecOptions | None = None,
        read_preference: ServerMode | None = None,
        write_concern: WriteConcern | None = None,
        read_concern: ReadConcern | None = None,
    ) -> Any:
        return type(self)(
            self._client, self._name, codec_options or self._codec_options,
            read_preference or self._read_preference, write_concern or self._write_concern,
            read_concern or self._read_concern,
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(
                f"Database has no attribute {name!r}. To access the {name} collection, "
                f"use database[{name!r}]."
            )
        return self[name]

    def __getitem__(self, name: str) -> Any:
        return self._collection_class(self, name)

    def get_collection(
        self,
        name: str,
        codec_options: CodecOptions | None = None,
        read_preference: ServerMode | None = None,
        write_concern: WriteConcern | None = None,
        read_concern: ReadConcern | None = None,
    ) -> Any:
        return self._collection_class(self, name, codec_options, read_preference, write_concern,
                                      read_concern)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DatabaseBase):
            return self._client == other._client and self._name == other._name
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._client!r}, {self._name!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            f"'{type(self).__name__}' object is not callable. If you meant to call a method on "
            f"a '{type(self._client).__name__}' object it is failing because no such method "
            "exists."
        )

    # --- commands (no I/O) --------------------------------------------------------------------
    @staticmethod
    def _command_document(command: str | Mapping[str, Any], value: Any,
                          kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(command, str):
            document: dict[str, Any] = {command: value}
        elif isinstance(command, Mapping):
            document = dict(command)
        else:
            raise TypeError("command must be a string or a mapping")
        document.update(kwargs)
        return document

    @staticmethod
    def _list_collections_command(filter: Mapping[str, Any] | None,
                                  kwargs: Mapping[str, Any]) -> dict[str, Any]:
        command: dict[str, Any] = {"listCollections": 1, "cursor": {}}
        if filter:
            command["filter"] = filter
        command.update(kwargs)
        return command

    @staticmethod
    def _drop_target(name_or_collection: Any) -> str:
        name = getattr(name_or_collection, "name", name_or_collection)
        if not isinstance(name, str):
            raise TypeError("name_or_collection must be an instance of str or Collection")
        return name

    @staticmethod
    def _check_drop(reply: dict[str, Any]) -> dict[str, Any]:
        """A ``drop`` reply: a collection that did not exist is no error."""
        if reply.get("code") != NAMESPACE_NOT_FOUND and reply.get("errmsg") != "ns not found":
            check_reply(reply)
        return reply


class Database(DatabaseBase):
    """A database, run with the threaded client."""

    _collection_class = Collection

    def command(
        self,
        command: str | Mapping[str, Any],
        value: Any = 1,
        check: bool = True,
        allowable_errors: list[Any] | None = None,
        read_preference: ServerMode | None = None,
        codec_options: CodecOptions | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Run any command document and return the server's raw reply; an ``ok: 0`` reply
        raises :class:`~helogale.errors.OperationFailure` (``code``, ``details``) when ``check``."""
        document = self._command_document(command, value, kwargs)
        return self._client.run_command(
            self._name, document,
            read_preference=read_preference or ReadPreference.PRIMARY,
            codec_options=codec_options or self._codec_options,
            check=check, allowable_errors=tuple(allowable_errors or ()),
        )

    def list_collections(self, filter: Mapping[str, Any] | None = None, **kwargs: Any) -> CommandCursor:
        reply, address = self._client.read_command(
            self._name, self._list_collections_command(filter, kwargs), ReadPreference.PRIMARY,
            self._codec_options)
        return CommandCursor(self._client, self._name, reply["cursor"], address, self._codec_options)

    def list_collection_names(self, filter: Mapping[str, Any] | None = None, **kwargs: Any) -> list[str]:
        return [c["name"] for c in self.list_collections(filter, nameOnly=True, **kwargs)]

    def create_collection(self, name: str, **kwargs: Any) -> Collection:
        collection = Collection(self, name)
        self.command({"create": name, **kwargs})
        return collection

    def drop_collection(self, name_or_collection: str | Collection) -> dict[str, Any]:
        name = self._drop_target(name_or_collection)
        return self._check_drop(self.command({"drop": name}, check=False))
