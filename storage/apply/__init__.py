"""Declarative apply (Heat-like): a stack file, a pure plan, and a small executor.

``models`` (the stack file, pydantic; the JSON Schema is generated from it), ``source`` (YAML
text -> validated model, errors with line numbers), ``plan`` (pure: current state + desired ->
Plan), ``state`` (reads the current state through the services) and ``execute`` (runs a Plan
through st.volumes, st.policies, st.exports).
"""
