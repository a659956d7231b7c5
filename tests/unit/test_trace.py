"""BonnMotion `.movements` traces: parsed into each node's waypoints; a bad line is refused with its
number, its node and what is wrong with it."""

import gzip

import pytest

from orchestrator.air.trace import TraceError, parse_movements, read_movements

LIMITS = {"max_coord": 1000.0, "max_speed": 100.0}


def parse(text: str):
    return parse_movements(text, "x.movements", **LIMITS)


def test_one_line_per_node_of_t_x_y_triples():
    nodes = parse("0 0 0 10 50 0\n0.0 1.5 2.5\n")
    assert nodes == [((0.0, 0.0, 0.0), (10.0, 50.0, 0.0)), ((0.0, 1.5, 2.5),)]


def test_comments_and_blank_lines_are_skipped_and_do_not_count_as_nodes():
    nodes = parse("# made by hand\n\n0 1 1\n   \n# node 1 next\n0 2 2 5 3 3\n")
    assert [n[0][1] for n in nodes] == [1.0, 2.0]


@pytest.mark.parametrize("text, line, says", [
    ("0 0 0 5 1\n", 1, "5 numbers is not a whole number of `t x y` triples"),
    ("0 0 0\n0 0 zero\n", 2, "'zero' is not a number"),
    ("0 0 0\n# fine\n0 nan 0\n", 3, "every number must be finite"),
    ("0 0 0 10 2000 0\n", 1, r"triple 2: \(2000, 0\) is beyond ±1000 m"),
    ("-1 0 0\n", 1, "triple 1: time -1 s is before the start"),
    ("0 0 0 5 1 1 5 2 2\n", 1, "triple 3: time 5 s does not come after 5 s"),
    ("0 0 0 5 1 1 4 2 2\n", 1, "triple 3: time 4 s does not come after 5 s"),
    ("0 0 0\n0 0 0 1 500 0\n", 2, r"triple 2: 500.0 m/s .* faster than 100 m/s"),
])
def test_a_bad_line_is_refused_with_its_number(text, line, says):
    with pytest.raises(TraceError, match=rf"^x.movements: line {line} \(node \d+\): {says}"):
        parse(text)


def test_the_node_a_bad_line_would_have_been_is_named():
    with pytest.raises(TraceError, match=r"line 4 \(node 2\)"):
        parse("0 0 0\n\n0 1 1\n0 x 1\n")


def test_an_empty_trace_is_refused():
    with pytest.raises(TraceError, match="x.movements: no node's movements"):
        parse("# nothing\n\n")


def test_files_plain_and_gzipped_as_bonnmotion_writes_them(tmp_path):
    plain = tmp_path / "a.movements"
    plain.write_text("0 1 2 3 4 5\n")
    packed = tmp_path / "a.movements.gz"
    packed.write_bytes(gzip.compress(b"0 1 2 3 4 5\n"))
    assert read_movements(plain, **LIMITS) == read_movements(packed, **LIMITS) == [((0.0, 1.0, 2.0), (3.0, 4.0, 5.0))]


def test_unreadable_files_say_which_and_why(tmp_path):
    with pytest.raises(TraceError, match=r"nope.movements: cannot read the trace"):
        read_movements(tmp_path / "nope.movements", **LIMITS)
    binary = tmp_path / "b.movements"
    binary.write_bytes(b"0 0 \xff\n")
    with pytest.raises(TraceError, match=r"b.movements: not text"):
        read_movements(binary, **LIMITS)
    with pytest.raises(TraceError, match=r"bad.movements.gz: cannot read"):
        (tmp_path / "bad.movements.gz").write_bytes(b"not gzip")
        read_movements(tmp_path / "bad.movements.gz", **LIMITS)


def test_the_shipped_example_trace_parses():
    nodes = read_movements(__import__("pathlib").Path("traces/walk-and-cycle.movements"), **LIMITS)
    assert len(nodes) == 2 and nodes[0][0] == (0.0, 0.0, 40.0) and nodes[1][0] == (0.0, 270.0, -40.0)
