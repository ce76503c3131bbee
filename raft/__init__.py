"""Raft consensus library: a pure state machine, its storage interface, and (elsewhere) I/O.

Knows nothing of documents. The pure core never touches sockets, disks, threads or clocks;
a driver feeds it inputs and performs the I/O it asks for (see ``raft.types`` for the exact
driver contract and the order of persistence, sending and applying).

Public API
----------
``raft.core``
    ``Config(id, election_tick=10, heartbeat_tick=1, pre_vote=True, check_quorum=True,
    max_size_per_msg=1 MiB, max_inflight_msgs=256, max_inflight_bytes=0,
    max_uncommitted_entries=0, applied=0, rng=None)`` and ``RawNode(config, storage)``:

    - inputs: ``tick()``, ``step(msg)``, ``campaign()``, ``propose(data) -> index``,
      ``propose_batch([data, ...]) -> last index``, ``propose_conf_change(cc) -> index``,
      ``transfer_leader(to)``, ``read_index(context)``, ``leader_unreachable(peer)`` (the
      driver saw its connection from the leader end: the election timer counts as expired,
      so the follower campaigns within half its random spread) (proposals raise ``ProposalDropped``
      when this node cannot accept them: not leader, transfer in progress, pending change);
    - outputs: ``has_ready()``, ``ready() -> Ready``, ``advance(ready)``;
    - observation: ``status() -> Status`` (role, term, vote, leader, commit, applied,
      last_index, conf_state, lead_transferee, and on the leader ``progress[id].match`` per
      member: write concern ``w=N`` waits until N members have ``match >= index``),
      ``match_index(id)``, ``role``, ``term``, ``leader``, ``committed``, ``applied``,
      ``conf`` (the configuration as of the applied index: put it in snapshots).
``raft.types``
    ``Entry(term, index, type, data)``, ``EntryType``, ``HardState``, ``ConfState``,
    ``Snapshot(meta, data)``, ``SnapshotMeta(index, term, conf_state)``, ``Message``,
    ``MessageType``, ``Ready``, ``ReadState(index, context)``, ``SoftState``, ``StateRole``,
    ``ConfChange(changes, transition)``, ``ConfChangeSingle(type, node_id)``,
    ``ConfChangeType``, ``ConfChangeTransition``, the ``LogStorage`` protocol, and the errors
    ``RaftError``, ``ProposalDropped``, ``StorageCompacted``, ``SnapshotTemporarilyUnavailable``.
``raft.confchange``
    ``encode(cc) -> bytes`` / ``decode(bytes) -> ConfChange`` (the data of CONF_CHANGE
    entries), ``apply(conf_state, cc) -> ConfState``, and ``bootstrap_entries(conf_state)
    -> (HardState, [Entry])`` that founding members persist before their first start (a node
    joining later starts from empty storage and learns the membership from the leader).
``raft.memory_storage``
    ``MemoryStorage``: in-memory ``LogStorage`` with ``append``, ``set_hard_state``,
    ``apply_snapshot``, ``create_snapshot(index, conf_state, data)`` and ``compact(index)``.

``raft.auth``
    ``load_keyfile(path) -> bytes`` (MongoDB's keyFile rules; ``KeyFileError``),
    ``write_keyfile(path)``, ``Verifier`` / ``client_metadata`` (the HMAC challenge proof a
    stream presents); ``TcpTransport(..., key=)``, ``GrpcTransport(..., key=)`` and
    ``RaftNode(..., cluster_key=)`` use it.
``raft.validate``
    ``check_message(msg) -> reason | None``: what a received message must look like.

Internals: ``raft.log`` (durable log view + unstable tail), ``raft.progress`` (per-follower
flow control), ``raft.quorum`` (majority/joint arithmetic), ``raft.read_only`` (ReadIndex).
The durable WAL, the transports and threaded driver build on these (``raft.wal``,
``raft.tcp_transport`` (the default: the raft loop writes into peers' sockets itself),
``raft.transport`` (gRPC streams, ``RaftNodeConfig(transport="grpc")``), ``raft.node``);
``raft.trace`` marks one write's hops across threads and processes when
``HELOGALE_RAFT_TRACE`` is set (``python -m bench trace``).

Compaction: after ``advance``, when the applied index has moved far enough, the application
snapshots its state machine and calls ``storage.create_snapshot(applied, node.conf, data)``
then ``storage.compact(index)``; the leader sends that snapshot, in chunks of
``max_size_per_msg`` bytes, to followers that need compacted entries.
"""
