"""The VM route: the lab inside a virtme-ng VM when the host kernel has no mac80211_hwsim.

machine (find a kernel, boot and power off the VM, its record in the lab directory), agent
(`python -m orchestrator.vm.agent`, the one process in the VM: runs verbs there and proxies node
REST calls) and client (the host's side: run one verb in the VM, its failure with its exit status).
May import: the bottom layer (errors, logfmt, atomic, labfiles) and orchestrator.lab; verbs are
loaded by name, never imported statically.
"""
