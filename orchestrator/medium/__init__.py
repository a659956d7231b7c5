"""The lab's wireless medium: the process that decides, frame by frame, who hears whom.

hwsim (mac80211_hwsim's generic netlink messages, packed and parsed by hand for the hot path),
process (`python -m orchestrator.medium.process`, run in the lab's medium netns: the delivery loop
over the air model) and control (the controller's
side: start it through the netns runtime, tell whether it runs, change positions and isolation).
May import: orchestrator.air, orchestrator.lab, orchestrator.runtime.
"""
