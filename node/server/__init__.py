"""The replica-set server: a member process around the engine and the Raft log.

``statemachine`` applies committed log entries to the engine (effects, log index and retryable
write results in one store transaction); ``replica`` is the member (owns the Raft node, proposes
writes, waits for write concern, answers topology questions); ``standalone`` is a single member
without Raft for tests and embedding; ``grpc_service`` serves the command endpoint; ``config``
holds the process settings (flags, TOML file); ``app`` assembles one member process; ``logs``
writes structured JSON logs to stderr. See docs/replication.md.
"""
