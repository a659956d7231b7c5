"""The verbs: one module per `meshpay-lab` verb, `run(lab_dir: Path, **args) -> dict` (JSON-able).

A verb does the work where its lab lives (the host, or inside the lab's VM through the agent);
the CLI only parses and renders. image is the one verb without a lab (`image build`).
May import: everything below it (lab, air, kernel, runtime, medium, report, vm). A host verb (draw,
run, labs) is given `dispatch` (orchestrator.dispatch.call) for its steps; no verb imports it.
"""
