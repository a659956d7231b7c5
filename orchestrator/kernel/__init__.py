"""The kernel plane: what this package asks of the Linux kernel, over netlink.

netlink (message classes and sockets for MAC80211_HWSIM, nl80211 and rtnetlink), radio (hwsim
radios: make, list, delete, move a phy into a netns), mesh (a node's 802.11s mesh point, plink
blocks, station and mpath dumps), meshconf (mesh parameter names and ranges, checked once),
netns (/run/netns and the processes in a namespace) and mgmt (the management bridge, one veth per node).
May import: the bottom layer (errors, logfmt, atomic, labfiles, air); never the lab or above.
"""
