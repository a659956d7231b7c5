"""The kernel plane: what this package asks of the Linux kernel, over netlink.

netlink (message classes and sockets for MAC80211_HWSIM, nl80211 and rtnetlink), radio (hwsim
radios: make, list, delete, move a phy into a netns), mesh (a node's 802.11s mesh point, plink
blocks, station and mpath dumps) and mgmt (the management bridge and one veth per node).
May import: the air model's constants only where the kernel needs them; never the lab or above.
"""
