"""CPU reference interpreter for mpk IR.

`ops` holds the numpy semantics of every graph op (reused by task-level
interpreters on tiles); `graph.run_graph` executes a graph-level decode step.
"""
