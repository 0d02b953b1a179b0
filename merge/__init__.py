"""In-order integration of subtask branches, overlap and conflict detection, conflict reports.

Plain synchronous code on git plumbing: no trio, no agents, no working tree.
"""
