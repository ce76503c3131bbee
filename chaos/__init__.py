"""Fault injection (kill, pause, partition) with history checkers.

Will hold the nemesis, the workloads, and the checkers that prove nothing acknowledged is lost.
"""
