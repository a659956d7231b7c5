"""What the lab reports: figures and pictures computed from what verbs return (pure).

meshmetrics (latency, time to quorum, hops, healing), transferlog (one JSON line per transfer)
and meshmap (the mesh drawn as SVG/HTML and PNG).
May import: nothing of orchestrator.
"""
