"""The air: a pure model of the radio medium, no kernel and no lab directory.

propagation (path loss, frame loss), mobility and trace (where a moving node is), airspace (who
hears whom and what one transmitted frame becomes), airtime (channel contention), shaping (link
delay, jitter, rate) and capture (the pcapng of what the medium saw). The medium process
(orchestrator.medium) runs this model; the lab (orchestrator.lab) validates topologies against it.
May import: nothing of orchestrator but its own modules.
"""
