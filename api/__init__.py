"""The decision API: the pipeline's identity and policy stages, asked before the action.

A driver, like ``streams/``: it composes the stages (through ``vigil.runtime``) and the
store, and answers HTTP instead of consuming a topic. It is a package of its own
rather than a module of ``streams/`` because it is request/response, with its own
dependencies (Starlette, uvicorn) that the stream workers do not load.
"""
