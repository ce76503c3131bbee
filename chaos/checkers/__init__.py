"""History checkers: linearizability (register), set, counter and list-append.

Each checker takes the paired operations of a history (``chaos.history.pair``) and returns the
anomalies it found, each with the smallest slice of history that shows it.
"""
