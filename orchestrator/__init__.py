"""meshpay-lab's controller: builds a lab of FastPay nodes over a real 802.11s mesh and drives it.

Layers, top to bottom (a module imports only from layers below its own; docs/architecture.md):

    cli, dispatch, vmlab,  the host's front: arguments and rendering, the one way into a verb,
    liveview               a lab's up/down here or in its VM, draw --live
    verbs/                 one module per verb
    medium/                the wireless medium process and its control
    runtime/               where a node's netns and processes live, and what runs there
    vm/                    the VM route: the machine, the agent inside it, the host's client of it
    lab/                   topology -> plan -> lab directory and registry
    kernel/  air/  report/ netlink to the kernel; the pure radio model; figures and pictures
    errors, logfmt,        the exit-status contract; structured log lines; write-then-rename;
    atomic, labfiles       the lab directory's file names
"""
