"""The lab: what a topology asks for, what `up` will make of it, and where that is recorded.

yamldoc (YAML into pydantic with file/line/field errors), topology and scenario (the two input
files), plan (pure: every name, address and MAC `up` will create), validate (checks across
files), keys, nodeconfig (each node's NODE_JSON), labdir (the lab directory and its state files)
and registry (the host-wide list of labs and their identities).
May import: orchestrator.air and orchestrator.kernel (mesh parameter names); never runtimes or verbs.
"""
