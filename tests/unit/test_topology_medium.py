import pytest

from orchestrator.lab.plan import make_plan, medium_netns
from orchestrator.lab.topology import TopologyError, parse_topology

BASE = "name: m\n{medium}nodes:\n  a: {{role: authority, position: [0, 0]}}\n  b: {{role: client, position: [300, 0]}}\n"


def plan(medium: str = ""):
    return make_plan(parse_topology(BASE.format(medium=medium)))


def test_a_medium_by_default_so_range_needs_no_plink_blocks():
    p = plan()
    assert p.medium is not None and p.medium.model == "free_space"
    assert p.medium.netns == medium_netns("m") == "mpl-m-.medium"
    assert ("a", "b") in p.blocked  # still not neighbours...
    assert p.plink_blocked == ()  # ...but the medium keeps them apart, not a plink block


def test_medium_none_keeps_the_kernels_perfect_medium_and_the_blocks():
    for spelling in ("medium: none\n", "medium: {model: none}\n"):
        p = plan(spelling)
        assert p.medium is None and p.plink_blocked == p.blocked == (("a", "b"),)


def test_explicit_links_stay_blocked_with_a_medium():
    p = make_plan(parse_topology(BASE.format(medium="") + "links:\n  - {a: a, b: b}\n"))
    assert p.plink_blocked == (("a", "b"),)


def test_log_distance_settings_reach_the_plan():
    p = plan("medium: {model: log_distance, exponent: 3.5, ref_distance_m: 2, loss: false}\n")
    assert (p.medium.model, p.medium.exponent, p.medium.ref_distance_m, p.medium.loss) == ("log_distance", 3.5, 2.0, False)


def test_bad_medium_settings_name_the_line_and_field():
    with pytest.raises(TopologyError, match=r"line 2: medium.model"):
        plan("medium: {model: ray_tracing}\n")
    with pytest.raises(TopologyError, match=r"medium.exponent"):
        plan("medium: {model: log_distance, exponent: 40}\n")
